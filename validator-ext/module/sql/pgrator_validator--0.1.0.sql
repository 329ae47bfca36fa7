-- Views of the pgrator OAuth validator's shared state (meaningful when it is in shared_preload_libraries).
\echo Use "CREATE EXTENSION pgrator_validator" to load this file. \quit

CREATE FUNCTION counters(OUT name text, OUT count bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgrator_validator_counters_wrapper'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

CREATE FUNCTION key_cache(
    OUT issuer text, OUT shared boolean, OUT keys integer, OUT generation bigint, OUT age_seconds bigint,
    OUT refresh_in_seconds bigint, OUT fresh_for_seconds bigint, OUT failures integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'pgrator_validator_key_cache_wrapper'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION counters() IS 'Logins by outcome since start (accepted, expired, bad_signature, ...) and key fetches';
COMMENT ON FUNCTION key_cache() IS 'Cached keys per issuer: count, age, next refresh, consecutive fetch failures';
REVOKE ALL ON FUNCTION counters(), key_cache() FROM PUBLIC;
