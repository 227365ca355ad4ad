# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_certkeeper_global_optspecs
    string join \n c/config= log-level= log-format= h/help V/version
end

function __fish_certkeeper_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_certkeeper_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_certkeeper_using_subcommand
    set -l cmd (__fish_certkeeper_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c certkeeper -n "__fish_certkeeper_needs_command" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_needs_command" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_needs_command" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_needs_command" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -s V -l version -d 'Print version'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "run" -d 'Run the renewal daemon: keep every certificate valid, reload on SIGHUP or config edits'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "check" -d 'Validate the inventory and print a summary (exit 78 when invalid)'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "renew" -d 'Obtain missing certificates and renew those that are due'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "revoke" -d 'Revoke a lineage\'s current certificate and stop renewing it'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "status" -d 'Show every certificate: names, expiry, issuer, serial, state'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "import-certbot" -d 'Move from certbot: adopt its lineages into the state directory (nothing is re-issued before it is due) and write the equivalent inventory; needs no existing inventory'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "notify" -d 'Notifications to the `[[notify]]` targets'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "cluster" -d 'Fleet mode: this node and the fleet it shares certificates with (`[cluster]`)'
complete -c certkeeper -n "__fish_certkeeper_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand run" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand run" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand run" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand run" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand check" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand check" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand check" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand check" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l action -d 'DigiCert lifecycle action for these renewals, overriding each certificate\'s `action`' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l timeout -d 'Give up waiting for the CA on one order after this many seconds' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l force -d 'Renew even when not due'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l new-key -d 'Renew now (as --force) with a new private key, even for certificates with `reuse_key = true`; later renewals reuse the new key. An order in flight that reuses the live key is dropped for a new one'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -l no-hooks -d 'Run no hooks (pre, deploy, reload, post) in this pass'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand renew" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand revoke" -l reason -d 'unspecified, keyCompromise, affiliationChanged, superseded or cessationOfOperation (case-insensitive; certbot\'s spellings such as `keycompromise` work)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand revoke" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand revoke" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand revoke" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand revoke" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand status" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand status" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand status" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand status" -l json -d 'Print JSON instead of a table'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -l certbot-dir -d 'certbot\'s configuration directory (with renewal/, live/, archive/, accounts/)' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -s o -l output -d 'Write the inventory to this new file (never overwritten) instead of standard output' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -l state-dir -d 'certkeeper\'s state directory: the lineages are adopted into it, and the inventory\'s `state_dir` names it' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand import-certbot" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and not __fish_seen_subcommand_from test help" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and not __fish_seen_subcommand_from test help" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and not __fish_seen_subcommand_from test help" -f -a "test" -d 'Send a test notice now, bypassing the outbox, to one target or every target; prints `TARGET: delivered` or `TARGET: failed: ERROR` for each and exits 1 when one failed'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and not __fish_seen_subcommand_from test help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and __fish_seen_subcommand_from test" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and __fish_seen_subcommand_from test" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and __fish_seen_subcommand_from test" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and __fish_seen_subcommand_from test" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "test" -d 'Send a test notice now, bypassing the outbox, to one target or every target; prints `TARGET: delivered` or `TARGET: failed: ERROR` for each and exits 1 when one failed'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -f -a "status" -d 'Show the fleet\'s nodes and leases, and for every certificate whether this node\'s `live/` holds the fleet\'s newest version; exits 0 when in sync, 3 when behind (or holding a certificate not published yet), 69 when the database is unreachable, 77 when it refuses the login, 78 for a wrong fleet key or a newer schema'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -f -a "import" -d 'Move this node\'s certificates (with their keys) and ACME accounts into the fleet\'s database: each live certificate the fleet lacks (or holds an older one of) is published under its lease; running it again publishes nothing'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and not __fish_seen_subcommand_from status import help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from status" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from status" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from status" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from status" -l json -d 'Print JSON instead of a table'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from import" -s c -l config -d 'The inventory file' -r -F
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from import" -l log-level -d 'Log filter, e.g. `info`, `debug`, `certkeeper_acme=debug` (default: info, or $RUST_LOG)' -r
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from import" -l log-format -d 'Log line format on stderr (ignored when logging to journald)' -r -f -a "text\t''
json\t''"
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the fleet\'s nodes and leases, and for every certificate whether this node\'s `live/` holds the fleet\'s newest version; exits 0 when in sync, 3 when behind (or holding a certificate not published yet), 69 when the database is unreachable, 77 when it refuses the login, 78 for a wrong fleet key or a newer schema'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "import" -d 'Move this node\'s certificates (with their keys) and ACME accounts into the fleet\'s database: each live certificate the fleet lacks (or holds an older one of) is published under its lease; running it again publishes nothing'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "run" -d 'Run the renewal daemon: keep every certificate valid, reload on SIGHUP or config edits'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "check" -d 'Validate the inventory and print a summary (exit 78 when invalid)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "renew" -d 'Obtain missing certificates and renew those that are due'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "revoke" -d 'Revoke a lineage\'s current certificate and stop renewing it'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "status" -d 'Show every certificate: names, expiry, issuer, serial, state'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "import-certbot" -d 'Move from certbot: adopt its lineages into the state directory (nothing is re-issued before it is due) and write the equivalent inventory; needs no existing inventory'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "notify" -d 'Notifications to the `[[notify]]` targets'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "cluster" -d 'Fleet mode: this node and the fleet it shares certificates with (`[cluster]`)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and not __fish_seen_subcommand_from run check renew revoke status import-certbot notify cluster help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "test" -d 'Send a test notice now, bypassing the outbox, to one target or every target; prints `TARGET: delivered` or `TARGET: failed: ERROR` for each and exits 1 when one failed'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "status" -d 'Show the fleet\'s nodes and leases, and for every certificate whether this node\'s `live/` holds the fleet\'s newest version; exits 0 when in sync, 3 when behind (or holding a certificate not published yet), 69 when the database is unreachable, 77 when it refuses the login, 78 for a wrong fleet key or a newer schema'
complete -c certkeeper -n "__fish_certkeeper_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "import" -d 'Move this node\'s certificates (with their keys) and ACME accounts into the fleet\'s database: each live certificate the fleet lacks (or holds an older one of) is published under its lease; running it again publishes nothing'
