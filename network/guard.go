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
//
//   - the host's loopback: portmap sets route_localnet on the bridge so
//     that 127.0.0.1:HOSTPORT reaches a sandbox; without a guard a sandbox
//     with a raw socket could then reach services bound to the host's
//     127.0.0.1 (CVE-2020-8558). INPUT drops packets from the bridge to
//     127.0.0.0/8 that are not replies or published-port traffic.
//
//   - forwarding: on a host whose FORWARD policy drops (Docker sets it),
//     chain SBXRUN-FORWARD, jumped to from FORWARD, accepts what a bridge's
//     subnet sends within the bridge and, unless the network is internal,
//     out to interfaces that are no sbxrun bridge, and the replies and
//     published-port traffic coming back from those. These two rules per network replace the CNI firewall
//     plugin's two rules per sandbox: no plugin and no iptables run on a
//     sandbox's start or end.
//
// The chains, their FORWARD jumps and the final drop are shared by every
// network and stay (like CNI's own CNI-FORWARD); the per-bridge rules go
// with the network (`sbxrun network rm`).
const (
	isolateChain = "SBXRUN-ISOLATE"
	forwardChain = "SBXRUN-FORWARD"
	forwardJump  = "-A FORWARD -j " + forwardChain
)

// forwardRules are bridge's rules in SBXRUN-FORWARD, as iptables-save
// prints them; none without a subnet.
func forwardRules(bridge, subnet string, internal bool) []string {
	if subnet == "" {
		return nil
	}
	// Each rule keeps to its bridge or to interfaces that are no sbxrun
	// bridge, so that, wherever the chain's jump ends up in FORWARD, it
	// does not let one network reach another (SBXRUN-ISOLATE's drop).
	within := "-A " + forwardChain + " -s " + subnet + " -i " + bridge + " -o " + bridge + " -j ACCEPT"
	if internal {
		return []string{within}
	}
	return []string{within,
		"-A " + forwardChain + " -s " + subnet + " -i " + bridge + " ! -o sbx+ -j ACCEPT",
		"-A " + forwardChain + " -d " + subnet + " ! -i sbx+ -o " + bridge + " -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT"}
}

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

// Masquerading: one rule pair per network in chain SBXRUN-MASQ (nat),
// jumped to from POSTROUTING, in place of the bridge plugin's ipMasq,
// which made a chain and ran iptables half a dozen times per sandbox, on
// its start and again on its end.
const (
	masqChain = "SBXRUN-MASQ"
	masqJump  = "-A POSTROUTING -j " + masqChain
)

// masqRules are a network's masquerading rules (none for an internal
// network): what its subnet sends out of it, but multicast.
func masqRules(subnet string, internal bool) []string {
	if subnet == "" || internal {
		return nil
	}
	return []string{
		"-A " + masqChain + " -s " + subnet + " -d " + subnet + " -j RETURN",
		"-A " + masqChain + " -s " + subnet + " ! -d 224.0.0.0/4 -j MASQUERADE",
	}
}

// firewall is what iptables-save printed, by table: the lines, and the
// chains declared.
type firewall map[string]map[string]bool

func readFirewall() (firewall, error) {
	out, err := iptablesCmd(nil, "iptables-save")
	if err != nil {
		return nil, fmt.Errorf("reading the firewall: %w", err)
	}
	fw := firewall{"filter": {}, "nat": {}}
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			if fw[table] == nil {
				fw[table] = map[string]bool{}
			}
		case strings.HasPrefix(l, ":"):
			// ":CHAIN POLICY [counters]" is kept as ":CHAIN".
			fw[table][strings.Fields(l)[0]] = true
		case table != "":
			fw[table][l] = true
		}
	}
	return fw, nil
}

// ensureGuards adds the guard rules of bridge (subnet, internal or not)
// that are missing: one iptables-save to look, one iptables-restore when
// something is missing (the first sandbox of a network, after a reboot).
func ensureGuards(bridge, subnet string, internal bool) error {
	fw, err := readFirewall()
	if err != nil {
		return err
	}
	have := fw["filter"]
	var add []string
	if !have[":"+isolateChain] {
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
	if fr := forwardRules(bridge, subnet, internal); len(fr) > 0 {
		if !have[":"+forwardChain] {
			add = append(add, ":"+forwardChain+" - [0:0]")
		}
		if !have[forwardJump] {
			add = append(add, "-I FORWARD 1 -j "+forwardChain)
		}
		for _, r := range fr {
			if !have[r] {
				add = append(add, r)
			}
		}
	}
	var nat []string
	if mr := masqRules(subnet, internal); len(mr) > 0 {
		have := fw["nat"]
		if !have[":"+masqChain] {
			nat = append(nat, ":"+masqChain+" - [0:0]")
		}
		if !have[masqJump] {
			nat = append(nat, "-I POSTROUTING 1 -j "+masqChain)
		}
		// The RETURN first: a restore adds both in this order, and a
		// lone MASQUERADE left (by hand) is re-added after it, harmless.
		for _, r := range mr {
			if !have[r] {
				nat = append(nat, r)
			}
		}
	}
	if len(add)+len(nat) == 0 {
		return nil
	}
	in := ""
	if len(nat) > 0 {
		in += "*nat\n" + strings.Join(nat, "\n") + "\nCOMMIT\n"
	}
	if len(add) > 0 {
		in += "*filter\n" + strings.Join(add, "\n") + "\nCOMMIT\n"
	}
	if _, err := iptablesCmd([]byte(in), "iptables-restore", "--noflush", "-w"); err != nil {
		return fmt.Errorf("adding sbxrun's firewall rules for %s: %w", bridge, err)
	}
	return nil
}

// removeGuards deletes the per-network rules of bridge and subnet (every
// copy).
func removeGuards(bridge, subnet string) error {
	type rule struct{ table, text string }
	var rules []rule
	for _, r := range guardRules(bridge) {
		rules = append(rules, rule{"filter", r})
	}
	if fw, err := readFirewall(); err == nil {
		for l := range fw["filter"] {
			if strings.HasPrefix(l, "-A "+forwardChain+" ") && (strings.Contains(l, " -i "+bridge+" ") || strings.Contains(l, " -o "+bridge+" ")) {
				rules = append(rules, rule{"filter", l})
			}
		}
		for l := range fw["nat"] {
			if subnet != "" && strings.HasPrefix(l, "-A "+masqChain+" -s "+subnet+" ") {
				rules = append(rules, rule{"nat", l})
			}
		}
	}
	for _, r := range rules {
		args := append([]string{"-w", "-t", r.table, "-D"}, strings.Fields(strings.TrimPrefix(r.text, "-A "))...)
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
