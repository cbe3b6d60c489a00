#!/usr/bin/env bash
# `sparsa serve` behind the reverse proxies of docs/deploy/, run from those
# very files (ports and certificate paths substituted with sed):
#  a) nginx (docs/deploy/nginx.conf) as a private process (its own prefix,
#     config, pid and logs in a temp dir; no system service) in front of
#     one server: the Vosk project's test.py, unmodified, through a plain
#     listener on 127.0.0.1:2700, and a wss:// session through its TLS
#     listener (a throwaway self-signed certificate) give sparsa
#     transcribe's finals; GET /health answers through it;
#  b) HAProxy (docs/deploy/haproxy.cfg, balance leastconn) on 127.0.0.1:2700
#     in front of two servers on two ports: 6 concurrent test.py runs give
#     transcribe's finals, and both servers' /health count admitted streams.
# Installs nginx, haproxy and openssl with apt-get when missing (sudo only
# when not root). Port 2700 must be free.
#   bash tests/serve/proxy.sh target/release/sparsa
set -euo pipefail
prog=proxy
# shellcheck source=tests/serve/lib.sh source-path=SCRIPTDIR/../..
source "$(dirname "$0")/lib.sh"
serve_setup "${1:-}"

# Installing them starts their system services on machines without a
# policy-rc.d: harmless (port 80 and none); the test runs its own processes.
bash tests/scripts/apt-install.sh nginx haproxy openssl
PATH=$PATH:/usr/sbin

require_port_free 2700 "test.py connects to ws://localhost:2700, where the proxy listens"
clips 3

# wait_port PORT WHAT: waits up to 20 s until 127.0.0.1:PORT accepts.
wait_port() {
  local deadline=$((SECONDS + 20))
  until port_busy "$1"; do
    ((SECONDS < deadline)) || fail "$2 does not accept connections on port $1"
    sleep 0.1
  done
}

# test_py_all WHAT: test.py on every clip through ws://localhost:2700.
test_py_all() {
  local i out
  for i in "${!clips[@]}"; do
    out="$work/$1.$i.out"
    timeout 120 "$py" "$peers/test.py" "${clips[i]}" >"$out" 2>"$out.err" ||
      fail "$1: test.py $(basename "${clips[i]}") failed: $(tail -n 1 "$out.err")"
    check_replies "$out" "${clips[i]}" "${ref[i]}" "$1: test.py $(basename "${clips[i]}")"
  done
}

# a) nginx with TLS in front of one server.
serve_start nginx-backend --listen 127.0.0.1:0
backend=$serve_pid
backend_port=$serve_port
[ -n "$backend_port" ] || fail "no 'listening: vosk ws://' line: $(cat "$work/nginx-backend.err")"
ng=$work/nginx
mkdir -p "$ng/logs"
chmod 755 "$work" # nginx's workers run as nobody when started as root
tls_port=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$ng/key.pem" -out "$ng/cert.pem" 2>/dev/null || fail "openssl could not make a certificate"
sed -e "s#server 127.0.0.1:2700;#server 127.0.0.1:$backend_port;#" \
  -e "s#listen 443 ssl;#listen 127.0.0.1:2700;\n    listen 127.0.0.1:$tls_port ssl;#" \
  -e "s#server_name asr.example.org;#server_name localhost;#" \
  -e "s#ssl_certificate .*#ssl_certificate $ng/cert.pem;#" \
  -e "s#ssl_certificate_key .*#ssl_certificate_key $ng/key.pem;#" \
  docs/deploy/nginx.conf >"$ng/sparsa.conf"
{ grep -q "127.0.0.1:$backend_port;" "$ng/sparsa.conf" && grep -q "$ng/key.pem" "$ng/sparsa.conf"; } ||
  fail "docs/deploy/nginx.conf no longer has the lines this test substitutes"
cat >"$ng/nginx.conf" <<CONF
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/logs/error.log;
events { worker_connections 256; }
http {
    access_log $ng/logs/access.log;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    include $ng/sparsa.conf;
}
CONF
nginx -t -p "$ng" -c "$ng/nginx.conf" -e "$ng/logs/error.log" >"$ng/t.log" 2>&1 ||
  fail "nginx -t rejects docs/deploy/nginx.conf: $(tail -n 3 "$ng/t.log" | tr '\n' ' ')"
nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/logs/error.log" -g 'daemon off;' 2>"$ng/stderr.log" &
nginx_pid=$!
cleanups+=("kill -QUIT $nginx_pid 2>/dev/null; wait $nginx_pid 2>/dev/null")
wait_port 2700 nginx
ok "nginx runs docs/deploy/nginx.conf: 127.0.0.1:2700 and TLS on $tls_port -> sparsa serve on $backend_port"
h=$(health 2700) || exit 1
ok "GET /health through nginx: $h"
test_py_all nginx
ok "test.py through nginx on ${#clips[@]} clips: finals equal sparsa transcribe"
out="$work/wss.out"
timeout 120 "$py" "$client" stream "wss://localhost:$tls_port/" "${clips[0]}" --ca "$ng/cert.pem" >"$out" 2>"$out.err" ||
  fail "wss:// session through nginx failed: $(tail -n 1 "$out.err")"
check_replies "$out" "${clips[0]}" "${ref[0]}" "wss:// through nginx"
ok "wss://localhost:$tls_port through nginx's TLS: finals equal sparsa transcribe"
kill -QUIT "$nginx_pid"
wait "$nginx_pid" || true
serve_stop "$backend" nginx-backend
ok "nginx stopped, its server exited 0 on SIGTERM"

# b) HAProxy, leastconn over two servers.
serve_start serve1 --listen 127.0.0.1:0
s1=$serve_pid
p1=$serve_port
serve_start serve2 --listen 127.0.0.1:0
s2=$serve_pid
p2=$serve_port
{ [ -n "$p1" ] && [ -n "$p2" ]; } || fail "no 'listening: vosk ws://' line from a server"
sed -e "s#127.0.0.1:2701#127.0.0.1:$p1#" -e "s#127.0.0.1:2702#127.0.0.1:$p2#" \
  docs/deploy/haproxy.cfg >"$work/haproxy.cfg"
{ grep -q "127.0.0.1:$p1 " "$work/haproxy.cfg" && grep -q "127.0.0.1:$p2 " "$work/haproxy.cfg"; } ||
  fail "docs/deploy/haproxy.cfg no longer has the server lines this test substitutes"
haproxy -c -q -f "$work/haproxy.cfg" >"$work/haproxy-c.log" 2>&1 ||
  fail "haproxy -c rejects docs/deploy/haproxy.cfg: $(tail -n 3 "$work/haproxy-c.log" | tr '\n' ' ')"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
cleanups+=("kill -TERM $haproxy_pid 2>/dev/null; wait $haproxy_pid 2>/dev/null")
wait_port 2700 haproxy
ok "haproxy runs docs/deploy/haproxy.cfg: 127.0.0.1:2700 -> sparsa serve on $p1 and $p2 (leastconn)"
a1=$(health_field "$(health "$p1")" admitted)
a2=$(health_field "$(health "$p2")" admitted)
n=6
clients_at_once "$n" lb
for i in $(seq 0 $((n - 1))); do
  j=$((i % ${#clips[@]}))
  check_replies "$work/lb.$i.out" "${clips[j]}" "${ref[j]}" "haproxy: test.py run $i"
done
ok "$n concurrent test.py runs through haproxy: finals equal sparsa transcribe"
b1=$(health_field "$(health "$p1")" admitted)
b2=$(health_field "$(health "$p2")" admitted)
((b1 > a1 && b2 > a2)) || fail "leastconn did not use both servers: admitted $a1 -> $b1 on $p1, $a2 -> $b2 on $p2"
((b1 - a1 + b2 - a2 == n)) || fail "the servers admitted $((b1 - a1 + b2 - a2)) streams for $n clients"
ok "both servers took streams: $((b1 - a1)) on $p1, $((b2 - a2)) on $p2"
kill -TERM "$haproxy_pid"
wait "$haproxy_pid" || true
serve_stop "$s1" serve1
serve_stop "$s2" serve2
ok "haproxy stopped, both servers exited 0 on SIGTERM"
