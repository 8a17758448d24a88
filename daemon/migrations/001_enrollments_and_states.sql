CREATE TABLE otpgate_enrollments (
    user_name text PRIMARY KEY,
    enrollment_id text NOT NULL,
    created bigint NOT NULL,
    devices text[] NOT NULL,
    recovery_codes integer NOT NULL,
    nonce bytea NOT NULL,
    sealed bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE otpgate_enrollments IS
    'otpgate: one row per enrolled account; sealed = the enrollment (secrets, hashed recovery codes) encrypted with secret_key_file, bound to user_name and enrollment_id';
CREATE TABLE otpgate_states (
    user_name text PRIMARY KEY,
    version bigint NOT NULL CHECK (version > 0),
    state text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE otpgate_states IS
    'otpgate: login state per account (replay memory, used recovery codes, failures, lockout); written only by compare-and-set on version';
