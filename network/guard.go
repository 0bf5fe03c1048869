package network

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Guards are the iptables rules sbxrun adds beside the CNI plugins' own,
// for what those leave open:
//
//   - isolation: sandboxes on different networks do not reach each other
//     (the host would route between the bridges). Chain SBXRUN-ISOLATE,
//     jumped to first from FORWARD, returns for traffic within one bridge
//     and drops traffic from one sbxrun bridge to another.
//   - the host's loopback: portmap sets route_localnet on the bridge so
//     that 127.0.0.1:HOSTPORT reaches a sandbox; without a guard a sandbox
//     with a raw socket could then reach services bound to the host's
//     127.0.0.1 (CVE-2020-8558). INPUT drops packets from the bridge to
//     127.0.0.0/8 that are not replies or published-port traffic.
//
// The chain, its FORWARD jump and its final drop are shared by every
// network and stay (like CNI's own CNI-FORWARD); the per-bridge rules go
// with the network (`sbxrun network rm`).
const isolateChain = "SBXRUN-ISOLATE"

func guardRules(bridge string) []string {
	return []string{
		"-A " + isolateChain + " -i " + bridge + " -o " + bridge + " -j RETURN",
		// In iptables-save's order of options, so it can be looked for.
		"-A INPUT -d 127.0.0.0/8 -i " + bridge + " -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
	}
}

const (
	isolateJump = "-A FORWARD -j " + isolateChain
	isolateDrop = "-A " + isolateChain + " -i sbx+ -o sbx+ -j DROP"
)

// iptablesCmd runs iptables tools (a variable for tests).
var iptablesCmd = func(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// ensureGuards adds the guard rules of bridge that are missing: one
// iptables-save to look, one iptables-restore when something is missing.
func ensureGuards(bridge string) error {
	cur, err := iptablesCmd(nil, "iptables-save", "-t", "filter")
	if err != nil {
		return fmt.Errorf("reading the firewall: %w", err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(cur), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var add []string
	if !have[":"+isolateChain+" - [0:0]"] && !strings.Contains(string(cur), ":"+isolateChain+" ") {
		add = append(add, ":"+isolateChain+" - [0:0]")
	}
	if !have[isolateJump] {
		add = append(add, "-I FORWARD 1 -j "+isolateChain)
	}
	rules := guardRules(bridge)
	if !have[rules[0]] {
		add = append(add, "-I "+isolateChain+" 1"+strings.TrimPrefix(rules[0], "-A "+isolateChain))
	}
	if !have[isolateDrop] {
		add = append(add, isolateDrop)
	}
	if !have[rules[1]] {
		add = append(add, "-I INPUT 1"+strings.TrimPrefix(rules[1], "-A INPUT"))
	}
	if len(add) == 0 {
		return nil
	}
	in := "*filter\n" + strings.Join(add, "\n") + "\nCOMMIT\n"
	if _, err := iptablesCmd([]byte(in), "iptables-restore", "--noflush", "-w"); err != nil {
		return fmt.Errorf("adding sbxrun's firewall rules for %s: %w", bridge, err)
	}
	return nil
}

// removeGuards deletes the per-bridge rules of bridge (every copy).
func removeGuards(bridge string) error {
	for _, r := range guardRules(bridge) {
		args := append([]string{"-w", "-t", "filter", "-D"}, strings.Fields(strings.TrimPrefix(r, "-A "))...)
		for range 10 {
			if _, err := iptablesCmd(nil, "iptables", args...); err != nil {
				break // no (more) such rule
			}
		}
	}
	return nil
}

// removeFirewallRules removes the firewall plugin's rules for addresses
// whose CNI ADD was interrupted (a killed sbxrun): libcni caches ADD's
// result only once the whole list succeeded, and without it the plugin's
// DEL does not know which addresses it allowed.
func removeFirewallRules(ips []string) {
	for _, ip := range ips {
		for _, rule := range [][]string{
			{"-d", ip + "/32", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
			{"-s", ip + "/32", "-j", "ACCEPT"},
		} {
			_, _ = iptablesCmd(nil, "iptables", append([]string{"-w", "-t", "filter", "-D", "CNI-FORWARD"}, rule...)...)
		}
	}
}
