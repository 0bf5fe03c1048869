#!/usr/bin/env bash
# make bench-net: sbxrun run --rm IMG true on the default bridge vs --net host vs
# ctr run --rm --cni (bridge, portmap, firewall, tuning from Debian's plugins), on one
# private containerd, interleaved. Prints min/median/max, median ratios and peak RSS,
# then checks that sbxrun left no rule, interface, namespace or allocation behind.
# ctr never calls CNI DEL: what its runs leave (a NAT chain and firewall rules per run,
# the addresses) is removed here afterwards. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-30}
subnet=${BENCH_CTR_SUBNET:-10.250.0.0/16}
dir=$(mktemp -d /tmp/sbxrun-bench-net.XXXXXX)
made_netd=0 made_bin=0
ctrnet=sbxrun-bench-ctr
cleanup() {
	SBXRUN_ADDRESS=$dir/containerd.sock SBXRUN_STATE_DIR=$dir/state SBXRUN_CNI_CONF_DIR=$dir/cni \
		bin/sbxrun network rm sbxrun >/dev/null 2>&1 || true
	hack/containerd.sh stop "$dir" >/dev/null 2>&1 || true
	# What ctr --cni left: its masquerade chains and firewall rules, addresses, bridge.
	python3 - "$ctrnet" "${subnet%.*.*}" <<'PY' | iptables-restore --noflush -w || true
import subprocess, sys
name, prefix = sys.argv[1], sys.argv[2] + "."
for table in ("nat", "filter"):
    out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
    dels, chains = [], []
    for l in out.splitlines():
        if not l.startswith("-A "):
            continue
        if ('name: \\"%s\\"' % name) in l or ('name: "%s"' % name) in l or (" -d " + prefix) in l or (" -s " + prefix) in l:
            dels.append("-D" + l[2:])
            if table == "nat" and l.startswith("-A POSTROUTING") and " -j CNI-" in l:
                chains.append(l.split(" -j ")[-1].strip())
    print("*" + table)
    print("\n".join(dels))
    for c in chains:
        print("-F " + c)
        print("-X " + c)
    print("COMMIT")
PY
	rm -rf "/var/lib/cni/networks/$ctrnet" /var/lib/cni/results/"$ctrnet"-* 
	ip link del sbxbench0 2>/dev/null || true
	rm -f /etc/cni/net.d/90-sbxrun-bench.conflist
	if ((made_netd)); then rmdir /etc/cni/net.d /etc/cni 2>/dev/null || true; fi
	if ((made_bin)); then rm -f /opt/cni/bin; rmdir /opt/cni 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
if ip route | grep -q "^${subnet%/*}"; then
	echo "hack/bench-net.sh: $subnet is routed here already: set BENCH_CTR_SUBNET to a free /16" >&2
	exit 1
fi
# ctr --cni reads /etc/cni/net.d and runs plugins from /opt/cni/bin.
[[ -d /etc/cni/net.d ]] || { mkdir -p /etc/cni/net.d; made_netd=1; }
[[ -e /opt/cni/bin ]] || { mkdir -p /opt/cni; ln -s /usr/lib/cni /opt/cni/bin; made_bin=1; }
cat >/etc/cni/net.d/90-sbxrun-bench.conflist <<JSON
{"cniVersion": "1.0.0", "name": "$ctrnet", "plugins": [
 {"type": "bridge", "bridge": "sbxbench0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "portmap", "capabilities": {"portMappings": true}},
 {"type": "firewall"},
 {"type": "tuning", "sysctl": {"net.ipv4.ping_group_range": "0 2147483647"}}]}
JSON
hack/containerd.sh start "$dir" >/dev/null
sock=$dir/containerd.sock
export SBXRUN_ADDRESS=$sock SBXRUN_STATE_DIR=$dir/state SBXRUN_CNI_CONF_DIR=$dir/cni
img=ghcr.io/sbxrun/base:latest
bin/sbxrun load -i bin/sandbox-base.tar >/dev/null
# Warm every path once (snapshot unpack, page cache, the default network and bridges).
bin/sbxrun run --rm --pull never --net bridge "$img" true
bin/sbxrun run --rm --pull never --net host "$img" true
ctr -a "$sock" -n sbxrun run --rm --cni "$img" warm true
rules_before=$(iptables-save | grep -vc '^#')
links_before=$(ip -o link | wc -l)
echo "$(date -u +%F) $(nproc) cores, $(uname -r), containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), CNI plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo '?')"
ctr=$(command -v ctr)
go build -o "$dir/bench" ./hack/bench
echo "== sbxrun --net bridge vs sbxrun --net host"
"$dir/bench" -n "$runs" \
	-a-name bridge -a "$PWD/bin/sbxrun run --rm --pull never --net bridge $img true" \
	-b-name host -b "$PWD/bin/sbxrun run --rm --pull never --net host $img true"
echo "== sbxrun --net bridge vs ctr run --rm --cni"
"$dir/bench" -n "$runs" \
	-a-name bridge -a "$PWD/bin/sbxrun run --rm --pull never --net bridge $img true" \
	-b-name ctr-cni -b "$ctr -a $sock -n sbxrun run --rm --cni $img {id} true"
echo "== sbxrun --net bridge -p 8000 (portmap) vs ctr run --rm --cni"
"$dir/bench" -n "$runs" \
	-a-name bridge-p -a "$PWD/bin/sbxrun run --rm --pull never --net bridge -p 8000 $img true" \
	-b-name ctr-cni -b "$ctr -a $sock -n sbxrun run --rm --cni $img {id} true"
# What is left: sbxrun's runs leave nothing; ctr's are counted here and removed on exit.
echo "left after $((runs * 3)) sbxrun bridge runs: $(find "$dir/state/netns" -mindepth 1 | wc -l) namespaces, $(find "$dir/state/cni/networks" -type f -name '[0-9]*' | wc -l) addresses, $(find "$dir/state/cni/attachments" -type f | wc -l) records"
echo "after $((runs * 2)) ctr --cni runs too: iptables lines $rules_before -> $(iptables-save | grep -vc '^#'), NAT rules naming ctr's network: $(iptables-save -t nat | grep -c "$ctrnet" || true), interfaces $links_before -> $(ip -o link | wc -l)"
