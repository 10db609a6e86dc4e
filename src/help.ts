export const HELP = `Usage: knetstat [OPTIONS] [FILTERS] [TABLE ...]

Every TCP and UDP socket (IPv4 and IPv6) with the socket options its process
set on it, in the format of the knetstat kernel module's /proc/net/tcpstat.

Tables (default: all four, one after another):
  tcp, tcp6, udp, udp6   also accepted as tcpstat, tcp6stat, udpstat, udp6stat

Output:
  -o, --options SET      which options the Options column shows:
                           knetstat  the kernel module's set (default)
                           all       knetstat's, then every other option read
                           NAME,...  exactly these, e.g. SO_KEEPALIVE,SO_LINGER
  -p, --processes        a PID/Program column before Options: pid/command of
                         each owner, joined with commas; - where none is seen
  -j, --json             one JSON array, one object per socket, all options
      --summary          counts instead of rows: per table and state, per Diag
                         indicator, per value of knetstat's options
  -w, --watch [SECONDS]  refresh every SECONDS (default 2, at least 0.1). On a
                         terminal: redrawn in place, new or changed lines
                         highlighted, q or Ctrl-C to leave. Otherwise, or with
                         --json: one snapshot per interval (NDJSON with --json)
      --source SOURCE    netlink (sock_diag) or proc (/proc/net); default:
                         netlink, or /proc/net when netlink is refused
      --no-helper        never start the helper process that shares the reads
                         on large listings (e.g. --json at 17,000+ sockets)
      --no-bpf           never load the BPF programs that find owners and read
                         most TCP options in one pass (as root, 5,000+ sockets)
  -h, --help             this help
  -V, --version          the version

Filters: a row must pass every filter given. A repeated filter matches any of
its values, except --option, whose expressions must all hold.
  -l, --listening        TCP LISTEN and UDP unconnected (UNCONN) sockets
      --state STATE      established, syn_sent, syn_recv, fin_wait1,
                         fin_wait2, time_wait, close, close_wait, last_ack,
                         listen, closing, unconn (UDP), or connected (all but
                         listen, close, time_wait, unconn); any case; ESTB etc.
      --port N           local or remote port N
      --local ADDR[:PORT]
                         local endpoint: 10.0.0.1, 10.0.0.0/8:443, :22, ::1,
                         [::1]:443, [fe80::/10]:22; PORT * is port 0. IPv4
                         also matches its IPv4-mapped IPv6 form
      --remote ADDR[:PORT]
                         remote endpoint, the same way
      --pid N            sockets held by process N
      --command NAME     sockets held by a process named exactly NAME (comm)
      --option EXPR      NAME (present and non-zero), NAME=VALUE, NAME!=VALUE,
                         NAME>N, NAME<N, NAME>=N, NAME<=N. Values as in --json
                         (SO_RCVBUF doubled by the kernel, timeouts in ms,
                         SO_LINGER in s or off); 500ms, 30s accepted. A socket
                         without the option, or whose options could not be
                         read, does not match (stderr counts the latter)
      --diag             only rows with a Diag indicator

Diag column (ESTABLISHED TCP only; ? = unknown with --source proc):
  >|   the peer's window is 0: nothing can be sent
  |<   our window is 0: nothing can be received
  >|<  both
  >#   unacknowledged data and no ACK for more than a second

Options of other users' sockets need root, or CAP_SYS_PTRACE (pidfd_getfd)
with CAP_DAC_READ_SEARCH (their /proc/PID/fd). Sockets whose options cannot be
read show a marker such as [not permitted] or [no owner]; --json says why in
optionsError.

Colours (Diag) only on a terminal, never with NO_COLOR set. Watch mode marks
new lines in reverse video, which is not a colour.

Questions it answers:
  Which of my service's connections have no keepalive?
    knetstat --command nginx --state established --option SO_KEEPALIVE=0 -p
  Which sockets are stuck right now (a zero window, data unacknowledged)?
    knetstat --diag -p
  Watch this listener and its connections while I restart the client:
    knetstat -w 1 --port 8080 -p
  What listens, and who owns it?
    knetstat -l -p
  Which connections go to this network, and with which options?
    knetstat --remote 10.0.0.0/8 --state connected -o all
    knetstat --local '[::1]:443' tcp6
  What does process 812 hold?
    knetstat --pid 812 -p
  Which connections wait forever on a dead peer?
    knetstat --state established --option SO_KEEPALIVE=0 \\
             --option TCP_USER_TIMEOUT=0
  Which sockets reset on close (linger 0)?
    knetstat --option SO_LINGER=0
  How many connections lack keepalive, by state?
    knetstat --summary tcp tcp6
  The same for a program:
    knetstat --json --state established --option SO_KEEPALIVE=0 | jq length
    knetstat --json -w 5 --diag      one JSON document per line, every 5 s

Exit status: 0 success (also when watch mode is left with q, Ctrl-C, SIGINT
or SIGTERM), 1 runtime failure, 2 bad arguments.
`;
