ALTER TABLE otpgate_enrollments ADD COLUMN counter bigint NOT NULL DEFAULT 0;
ALTER TABLE otpgate_enrollments ADD COLUMN removed boolean NOT NULL DEFAULT false;
ALTER TABLE otpgate_states ADD COLUMN mac bytea;
COMMENT ON TABLE otpgate_enrollments IS
    'otpgate: one row per account, never deleted; sealed = the enrollment (or, removed, a removal record) encrypted with secret_key_file, bound to user_name, enrollment_id, counter and removed; counter only grows';
COMMENT ON TABLE otpgate_states IS
    'otpgate: login state per account, never deleted; mac = HMAC under a key derived from secret_key_file over user_name, version and state; written only by compare-and-set on version';
