#!/usr/bin/env bash
# The GNU parallel recipe over SSH (.ci/run runs it): a private sshd on a
# loopback port, with its own host key, client key and authorized_keys under
# a temporary folder (nothing in ~/.ssh or /etc/ssh is touched), stands in
# for two hosts; scripts/parallel/run.sh runs 4 shards of an eval on them
# through `parallel --sshloginfile`, and the merged report and hypotheses
# must equal the single-process `sparsa eval`.
#   tests/scripts/parallel-ssh-test.sh SPARSA_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
sparsa=$(readlink -f "${1:?usage: $0 SPARSA_BINARY}")
data=$(readlink -f ../shared/corpora/speechocean762/test)
model=$PWD/models/default
port=${SSH_TEST_PORT:-2299}

fail() { echo "parallel-ssh test: FAILED: $*" >&2; exit 1; }
need=()
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v parallel >/dev/null || need+=(parallel)
if ((${#need[@]})); then
  echo "parallel-ssh test: installing ${need[*]}" >&2
  # Keep the package from starting a system-wide sshd on port 22.
  policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  rc=0
  apt-get update -qq || rc=$?
  ((rc)) || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
  ((added)) && rm -f "$policy"
  ((rc == 0)) || fail "apt-get install ${need[*]} failed (exit $rc)"
fi

work=$(mktemp -d /tmp/sparsa-ssh.XXXXXX)
sshd_pid=""
cleanup() {
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
cp "$work/client_key.pub" "$work/authorized_keys"
chmod 600 "$work/authorized_keys"
mkdir -p /run/sshd
# -D: stays in the foreground, so its pid is ours to stop.
/usr/sbin/sshd -D -e -p "$port" -h "$work/host_key" -o ListenAddress=127.0.0.1 \
  -o AuthorizedKeysFile="$work/authorized_keys" -o PermitRootLogin=prohibit-password \
  -o StrictModes=no -o PidFile="$work/sshd.pid" 2>"$work/sshd.log" &
sshd_pid=$!
ssh_opts="-p $port -i $work/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=$work/known_hosts"
for _ in $(seq 50); do
  # shellcheck disable=SC2086 # the options are words
  ssh $ssh_opts "$(id -un)@127.0.0.1" true 2>/dev/null && break
  sleep 0.1
done
# shellcheck disable=SC2086
ssh $ssh_opts "$(id -un)@127.0.0.1" true 2>"$work/ssh.err" ||
  fail "cannot log in to the test sshd: $(tail -1 "$work/ssh.err"); $(tail -1 "$work/sshd.log")"
# Two "hosts" (one job slot each): both this machine, reached over SSH.
printf '1/ssh %s %s@127.0.0.1\n1/ssh %s %s@localhost\n' "$ssh_opts" "$(id -un)" "$ssh_opts" "$(id -un)" >"$work/hosts"

# The flags put the same 40 utterances in both runs; 4 shards of 2 speakers need --per-utt.
flags=(--max-utts 40 --model "$model")
"$sparsa" eval "$data" "${flags[@]}" --hyp "$work/ref-hyp.txt" >"$work/ref.txt"
(cd "$work" && SSHLOGINFILE=$work/hosts SPARSA=$sparsa THREADS=1 \
  bash "$OLDPWD/scripts/parallel/run.sh" eval "$data" 4 "$work/out" "${flags[@]}" --per-utt >"$work/run.log" 2>&1) ||
  fail "scripts/parallel/run.sh failed: $(tail -3 "$work/run.log")"
[ "$(grep -c 'Accepted publickey' "$work/sshd.log")" -ge 4 ] ||
  fail "the shards did not run over SSH ($(grep -c 'Accepted publickey' "$work/sshd.log") logins)"
diff <(grep '^%WER' "$work/ref.txt") <(grep '^%WER' "$work/out/wer.txt") ||
  fail "the merged report differs from the single-process one"
cmp "$work/ref-hyp.txt" "$work/out/hyp.txt" || fail "the merged hypotheses differ"
echo "parallel-ssh test: passed: 4 shards over SSH on 2 host slots, merged report identical: $(grep '^%WER' "$work/out/wer.txt")"
