#!/usr/bin/env bash
# Install everything kcrash and its tests need on a Debian machine, build the real fixture dumps,
# and (unless --no-demo) open kcrash on the demo dump.  Idempotent: a second run costs seconds.
set -euo pipefail
cd "$(dirname "$0")"
need_apt=()
for pkg in qemu-system-x86 busybox-static kexec-tools makedumpfile crash cpio gdb binutils e2fsprogs jq; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
python3 -m pip install -q -e '.[test]'
# Unstable's crash 9 beside the system's 8.0.2, the tests' main oracle (cached; nothing installed on the host).
python3 tests/fixtures/crash9.py >/dev/null
# Every kernel series the tests run on (tests/fixtures/locate.py SERIES), two builds at a time: a build spends
# much of its time in downloads, in QEMU's single-threaded phases and in the tool checks.
build() { for series in "$@"; do python3 tests/fixtures/build.py --kernel "$series" || return 1; done; }
series_list() { (cd tests/fixtures && python3 -c "import locate; print(*list(locate.SERIES)[$1::2])"); }
# shellcheck disable=SC2046  # series names are single words
build $(series_list 0) & first=$!
# shellcheck disable=SC2046
build $(series_list 1) & second=$!
failed=0
wait "$first" || failed=1
wait "$second" || failed=1
if [ "$failed" -ne 0 ]; then
    echo "setup.sh: a fixture build failed (its error is above)" >&2
    exit 1
fi
if [ "${1:-}" != "--no-demo" ]; then
    demo=$(python3 -c 'import sys; sys.path.insert(0, "tests/fixtures"); import locate, json
d = locate.fixture_dir("6.1"); m = json.loads((d / "manifest.json").read_text())
print(d / m["vmlinux"]["file"], d / m["dumps"][0]["file"])')
    exec kcrash $demo
fi
