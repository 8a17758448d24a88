# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_otpgate_global_optspecs
    string join \n config= h/help V/version
end

function __fish_otpgate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_otpgate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_otpgate_using_subcommand
    set -l cmd (__fish_otpgate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c otpgate -n "__fish_otpgate_needs_command" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_needs_command" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_needs_command" -s V -l version -d 'Print version'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "enroll" -d 'Set up two-factor authentication: secret, QR code, confirmation, recovery codes'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "status" -d 'Show enrollment, devices, recovery codes left and last use'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "recovery-codes" -d 'Make a new set of recovery codes; the old set stops working'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "disable" -d 'Remove your enrollment (asks a current code unless root)'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "reset" -d 'Lost phone: remove a user\'s enrollment and login state; or --unlock a lockout (root)'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "audit" -d 'One row per login account: enrolled, since, recovery codes, last use, problems (root); fleet mode: the login history, the servers'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "check-config" -d 'Validate a config file and print the effective values'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "import" -d 'Migrate an existing enrollment from another tool'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "migrate" -d 'Fleet mode: move this server\'s enrollments and login state into the fleet store (root)'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "accept-restore" -d 'Fleet mode: after restoring the database from a backup, make this server accept it (root)'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "device" -d 'Several authenticators per user: add, list, remove'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c otpgate -n "__fish_otpgate_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l user -d 'Enroll this user instead of yourself (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l secret -d 'Use this base32 secret instead of generating one; "-" reads it from standard input (preferred: arguments are visible in `ps`)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l digits -d 'Code length, 6 to 8 (default from the config: 6)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l period -d 'Seconds per code, 10 to 300 (default from the config: 30)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l algorithm -d 'HMAC hash: SHA1, SHA256 or SHA512 (default from the config: SHA1)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l recovery-codes -d 'Number of recovery codes to generate (0 for none; default from the config)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l qr -d 'Where the QR code goes: terminal (default), none, png=PATH or svg=PATH' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l no-confirm -d 'Do not ask for a code to confirm the app works (root only, for provisioning)'
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l force -d 'Replace an existing enrollment (asks for a current code unless root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -l json -d 'Print the key URI, secret and recovery codes as JSON on stdout (sensitive: for provisioning tools; everything else goes to stderr)'
complete -c otpgate -n "__fish_otpgate_using_subcommand enroll" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand status" -l user -d 'Show this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand status" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand status" -l json -d 'Machine-readable output'
complete -c otpgate -n "__fish_otpgate_using_subcommand status" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand recovery-codes" -l user -d 'Act for this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand recovery-codes" -l count -d 'How many codes (default: the config\'s recovery_codes, 10)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand recovery-codes" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand recovery-codes" -l json -d 'Print the codes as JSON'
complete -c otpgate -n "__fish_otpgate_using_subcommand recovery-codes" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand disable" -l user -d 'Act for this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand disable" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand disable" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand reset" -l user -d 'The user to reset' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand reset" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand reset" -l unlock -d 'Only clear wrong-code counters and an active lockout'
complete -c otpgate -n "__fish_otpgate_using_subcommand reset" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -l user -d 'With --logins: only this user (a non-root user: only themself)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -l since -d 'With --logins: only the last DURATION (e.g. 90m, 24h, 7d)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -l json -d 'Machine-readable output'
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -l logins -d 'Fleet mode: who logged in where, with which method, and who was refused (newest first)'
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -l servers -d 'Fleet mode: every otpgated, its version and when it last reached the store (root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand audit" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand check-config" -l service -d 'Also apply the module arguments of this PAM service (/etc/pam.d/NAME)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand check-config" -l pam-dir -d 'Where PAM service files live' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand check-config" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand check-config" -s q -l quiet -d 'Print only problems (errors and warnings); nothing when all is well'
complete -c otpgate -n "__fish_otpgate_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and not __fish_seen_subcommand_from google-authenticator help" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and not __fish_seen_subcommand_from google-authenticator help" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and not __fish_seen_subcommand_from google-authenticator help" -f -a "google-authenticator" -d 'Read ~/.google_authenticator (google-authenticator-libpam): the app\'s entry keeps working'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and not __fish_seen_subcommand_from google-authenticator help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from google-authenticator" -l user -d 'Import for this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from google-authenticator" -l file -d 'The file to read (default: the user\'s ~/.google_authenticator)' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from google-authenticator" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from google-authenticator" -l force -d 'Replace an existing otpgate enrollment'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from google-authenticator" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "google-authenticator" -d 'Read ~/.google_authenticator (google-authenticator-libpam): the app\'s entry keeps working'
complete -c otpgate -n "__fish_otpgate_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpgate -n "__fish_otpgate_using_subcommand migrate" -l to -d 'The fleet config to move into (default: --config itself)' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand migrate" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand migrate" -l dry-run -d 'Only say what would be moved'
complete -c otpgate -n "__fish_otpgate_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand accept-restore" -l user -d 'Only this account (default: every account)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand accept-restore" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand accept-restore" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and not __fish_seen_subcommand_from add list remove help" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and not __fish_seen_subcommand_from add list remove help" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and not __fish_seen_subcommand_from add list remove help" -f -a "add" -d 'Add an authenticator: another phone app (TOTP), a hardware token (--hotp), a YubiKey touch (--yubico-otp)'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and not __fish_seen_subcommand_from add list remove help" -f -a "list" -d 'List the authenticators of an enrollment'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and not __fish_seen_subcommand_from add list remove help" -f -a "remove" -d 'Remove an authenticator (asks a current code unless root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and not __fish_seen_subcommand_from add list remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l user -d 'Act for this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l email -d 'Codes sent by e-mail to this address (press Enter at the prompt to get one)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l sms -d 'Codes sent by SMS to this number, in E.164 form (+4915112345678)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l public-id -d 'Yubico OTP: the key\'s public id, 12 modhex characters (the start of what it types)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l private-id -d 'Yubico OTP: the slot\'s private id, 12 hex digits' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l secret -d 'The device\'s base32 secret ("-": from stdin). Required for --hotp; for a TOTP app a new one is generated when omitted. With --yubico-otp: the slot\'s AES key, 32 hex digits (use "-")' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l counter -d 'HOTP: the token\'s current counter (default 0). Yubico OTP: refuse OTPs with a usage counter below N' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l digits -d 'Code length, 6 to 8' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l period -d 'TOTP: seconds per code' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l algorithm -d 'HMAC hash: SHA1, SHA256 or SHA512' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l qr -d 'Where the QR code goes (TOTP): terminal, none, png=PATH or svg=PATH' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l hotp -d 'A counter-based (RFC 4226 HOTP) hardware token, e.g. a YubiKey OATH-HOTP slot'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l yubico-otp -d 'A YubiKey slot in Yubico OTP mode, validated here with the slot\'s AES key (32 hex digits, given with --secret -): one touch types a code'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -l no-confirm -d 'Do not ask for a code from the new device (root only)'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from list" -l user -d 'Act for this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from list" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable output'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from remove" -l user -d 'Act for this user (root only)' -r
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from remove" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add an authenticator: another phone app (TOTP), a hardware token (--hotp), a YubiKey touch (--yubico-otp)'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the authenticators of an enrollment'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove an authenticator (asks a current code unless root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand device; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpgate -n "__fish_otpgate_using_subcommand completions" -l config -d 'Configuration file to use instead of /etc/otpgate/config.toml' -r -F
complete -c otpgate -n "__fish_otpgate_using_subcommand completions" -s h -l help -d 'Print help'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "enroll" -d 'Set up two-factor authentication: secret, QR code, confirmation, recovery codes'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "status" -d 'Show enrollment, devices, recovery codes left and last use'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "recovery-codes" -d 'Make a new set of recovery codes; the old set stops working'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "disable" -d 'Remove your enrollment (asks a current code unless root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "reset" -d 'Lost phone: remove a user\'s enrollment and login state; or --unlock a lockout (root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "audit" -d 'One row per login account: enrolled, since, recovery codes, last use, problems (root); fleet mode: the login history, the servers'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "check-config" -d 'Validate a config file and print the effective values'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "import" -d 'Migrate an existing enrollment from another tool'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "migrate" -d 'Fleet mode: move this server\'s enrollments and login state into the fleet store (root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "accept-restore" -d 'Fleet mode: after restoring the database from a backup, make this server accept it (root)'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "device" -d 'Several authenticators per user: add, list, remove'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "completions" -d 'Print shell completions'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and not __fish_seen_subcommand_from enroll status recovery-codes disable reset audit check-config import migrate accept-restore device completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "google-authenticator" -d 'Read ~/.google_authenticator (google-authenticator-libpam): the app\'s entry keeps working'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and __fish_seen_subcommand_from device" -f -a "add" -d 'Add an authenticator: another phone app (TOTP), a hardware token (--hotp), a YubiKey touch (--yubico-otp)'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and __fish_seen_subcommand_from device" -f -a "list" -d 'List the authenticators of an enrollment'
complete -c otpgate -n "__fish_otpgate_using_subcommand help; and __fish_seen_subcommand_from device" -f -a "remove" -d 'Remove an authenticator (asks a current code unless root)'
