export const HELP = `Usage: knetstat [OPTIONS] [TABLE ...]

Every TCP and UDP socket (IPv4 and IPv6) with the socket options its process set on
it, in the format of the knetstat kernel module's /proc/net/tcpstat and friends.

Tables (default: all four, one after another):
  tcp, tcp6, udp, udp6     also accepted as tcpstat, tcp6stat, udpstat, udp6stat

Options:
  -o, --options SET        which options the Options column shows:
                             knetstat  the kernel module's set (default)
                             all       knetstat's, then every other option read
                             NAME,...  exactly these, e.g. SO_KEEPALIVE,TCP_NODELAY
  -p, --processes          add a PID/Program column before Options
  -j, --json               one JSON array, one object per socket, every option read
      --source SOURCE      netlink (sock_diag) or proc (/proc/net); default: netlink,
                           falling back to /proc/net when netlink is refused
  -h, --help               this help
  -V, --version            the version

Diag column (ESTABLISHED TCP only; ? = unknown with --source proc):
  >|   the peer's window is 0: nothing can be sent
  |<   our window is 0: nothing can be received
  >|<  both
  >#   unacknowledged data and no ACK for more than a second

Options need ptrace access to each socket's owner: run as root or with
CAP_SYS_PTRACE. Sockets whose options cannot be read show a marker such as
[not permitted] or [no owner]; --json says why in optionsError.

Examples:
  knetstat                          all four tables
  knetstat tcp                      IPv4 TCP only, as /proc/net/tcpstat showed it
  knetstat -o all tcp6              every option read, IPv6 TCP
  knetstat -o SO_KEEPALIVE,TCP_KEEPIDLE tcp
  knetstat --json | jq '.[] | select(.options.SO_KEEPALIVE == 0)'
  knetstat --source proc            without netlink (no Diag, no tcp_info)

Exit status: 0 success, 1 runtime failure, 2 bad arguments.
`;
