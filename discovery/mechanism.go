package discovery

// Discovery mechanisms, as Mechanisms names them.
const (
	MechMDNS = "mdns"
	MechDHT  = "dht"
)

// States of a mechanism.
const (
	StateOff     = "off"     // not configured
	StateRunning = "running" // started and running
	StateFailed  = "failed"  // configured but could not start (Error says why)
	StateStopped = "stopped" // Run ended, or has not started yet
)

// Mechanism is the state of one discovery mechanism.
type Mechanism struct {
	Name  string
	State string
	Error string // why it failed ("" otherwise)
}

// Mechanisms reports the state of mDNS and the DHT, in that order. Before
// Run they are "stopped".
func (d *Discovery) Mechanisms() []Mechanism {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Mechanism, 0, 2)
	for _, name := range []string{MechMDNS, MechDHT} {
		m, ok := d.mu.mechs[name]
		if !ok {
			m = Mechanism{Name: name, State: StateStopped}
		}
		out = append(out, m)
	}
	return out
}

func (d *Discovery) setMechanism(name, state string, err error) {
	m := Mechanism{Name: name, State: state}
	if err != nil {
		m.Error = err.Error()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.mechs == nil {
		d.mu.mechs = map[string]Mechanism{}
	}
	if state == StateStopped && d.mu.mechs[name].State != StateRunning {
		return // off or failed stays what it was
	}
	d.mu.mechs[name] = m
}
