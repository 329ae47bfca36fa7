package main

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
)

// The pages a person uses: the device verification page (verification_uri) and the login page of the
// authorization code flow. Element ids are stable because a browser test drives them.
const (
	devicePath = "/device"
	loginPath  = "/login"
)

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<h1 id="title">{{.Title}}</h1>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
{{if .Result}}<p id="result">{{.Result}}</p>{{end}}
{{if eq .Form "device"}}
<form method="post" action="/device">
  <p><label for="user_code">Code</label> <input id="user_code" name="user_code" value="{{.UserCode}}" autocomplete="off"></p>
  <p><label for="username">Username</label> <input id="username" name="username" value="{{.Username}}" autocomplete="username"></p>
  <p><button id="approve" type="submit" name="action" value="approve">Approve</button>
     <button id="deny" type="submit" name="action" value="deny">Deny</button></p>
</form>
{{else if eq .Form "login"}}
<form method="post" action="/login">
  <input type="hidden" name="authRequestID" value="{{.AuthRequestID}}">
  <p><label for="username">Username</label> <input id="username" name="username" value="{{.Username}}" autocomplete="username"></p>
  <p><button id="login" type="submit">Log in</button></p>
</form>
{{end}}
</body>
</html>
`))

type page struct {
	Title, Error, Result, Form string
	UserCode, Username         string
	AuthRequestID              string
}

func renderPage(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, p); err != nil {
		slog.Error("rendering page", "err", err)
	}
}

// deviceHandler serves GET (the form, prefilled from verification_uri_complete) and POST (the decision).
func deviceHandler(s *Storage) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		form := page{Title: "Device login", Form: "device"}
		switch r.Method {
		case http.MethodGet:
			form.UserCode = r.URL.Query().Get("user_code")
			renderPage(w, http.StatusOK, form)
		case http.MethodPost:
			if err := r.ParseForm(); err != nil {
				form.Error = "cannot read the form"
				renderPage(w, http.StatusBadRequest, form)
				return
			}
			form.UserCode = r.PostForm.Get("user_code")
			form.Username = r.PostForm.Get("username")
			deny := r.PostForm.Get("action") == "deny"
			if _, err := s.decideDevice(form.UserCode, form.Username, deny); err != nil {
				form.Error = err.Error()
				renderPage(w, approvalStatus(err), form)
				return
			}
			result := "Device approved"
			if deny {
				result = "Device denied"
			}
			slog.Info("device decided on the login page", "user_code", normalizeUserCode(form.UserCode), "result", result)
			renderPage(w, http.StatusOK, page{Title: result, Result: result + ". You can return to your application."})
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	}
}

func approvalStatus(err error) int {
	var ae *approvalError
	if errors.As(err, &ae) {
		return ae.status
	}
	return http.StatusBadRequest
}

// loginHandler completes an authorization request: the user types a username (there are no passwords in the
// test world) and is sent back to the authorization callback, which redirects to the client with a code.
func loginHandler(s *Storage, callbackURL func(r *http.Request, id string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		form := page{Title: "Log in", Form: "login"}
		switch r.Method {
		case http.MethodGet:
			form.AuthRequestID = r.URL.Query().Get("authRequestID")
			renderPage(w, http.StatusOK, form)
		case http.MethodPost:
			if err := r.ParseForm(); err != nil {
				form.Error = "cannot read the form"
				renderPage(w, http.StatusBadRequest, form)
				return
			}
			form.AuthRequestID = r.PostForm.Get("authRequestID")
			form.Username = r.PostForm.Get("username")
			if err := s.completeAuthRequest(form.AuthRequestID, form.Username); err != nil {
				form.Error = err.Error()
				renderPage(w, http.StatusBadRequest, form)
				return
			}
			http.Redirect(w, r, callbackURL(r, form.AuthRequestID), http.StatusFound)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	}
}
