#!/usr/bin/env bash
# Headless Chromium (Debian) and playwright-core (npm, pinned in browser/package.json) for the test that approves
# a device login through the real login page.
source "$(dirname "$0")/lib.sh"
PART=browser
VERSION="playwright-$(grep -o '"playwright-core": "[^"]*"' "$WORLD_DIR/browser/package.json" | grep -o '[0-9][0-9.]*')"

apt_ensure chromium fonts-liberation

build() {
    cp "$WORLD_DIR/browser/package.json" "$WORLD_DIR/browser/approve.mjs" "$STAGE/"
    (cd "$STAGE" && run npm install --no-audit --no-fund --silent --ignore-scripts)
    [ -d "$STAGE/node_modules/playwright-core" ] || die "playwright-core did not install"
}

part_install build
# The script may change without a version change: always refresh it.
cp "$WORLD_DIR/browser/approve.mjs" "$(part_dir)/approve.mjs"
world_env PGRATOR_BROWSER_DIR "$(part_dir)"
world_env PGRATOR_CHROMIUM /usr/bin/chromium
