CREATE TABLE otpgate_logins (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    user_name text NOT NULL,
    server text NOT NULL,
    service text NOT NULL,
    method text,
    result text NOT NULL,
    rhost text
);
CREATE INDEX otpgate_logins_at ON otpgate_logins (at);
CREATE INDEX otpgate_logins_user_at ON otpgate_logins (user_name, at);
COMMENT ON TABLE otpgate_logins IS
    'otpgate: one row per login decision (never a code or a secret), kept login_history_days; written and pruned by otpgated';
CREATE TABLE otpgate_servers (
    name text PRIMARY KEY,
    version text NOT NULL,
    started timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    stopped boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE otpgate_servers IS
    'otpgate: one row per otpgated (server_name): its version, when it started and last reached the store, whether it stopped cleanly';
