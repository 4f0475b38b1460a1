package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// rendezvousTimeout bounds one namespace's advertise and lookup.
const rendezvousTimeout = 30 * time.Second

// maxRendezvousPeers bounds the peers taken from one lookup.
const maxRendezvousPeers = 64

// Run loads the persisted known peers, then runs until ctx ends: the redial
// loop (which dials bootstrap and known peers at once), mDNS and the DHT
// with its rendezvous loop when configured. A mechanism that cannot start
// (mDNS on a host without a multicast interface) is logged at once (Warn),
// reported by Mechanisms as failed, and the rest runs on: known peers,
// bootstrap peers and Connect keep working. It returns nil after ctx ended
// and everything it started stopped (mDNS closed, DHT closed), ErrRunning if
// another Run is running, or an error if loading the known peers failed.
func (d *Discovery) Run(ctx context.Context) (err error) {
	d.mu.Lock()
	if d.mu.running {
		d.mu.Unlock()
		return ErrRunning
	}
	d.mu.running = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.mu.running = false
		d.mu.Unlock()
	}()

	saved, err := d.load(ctx)
	if err != nil {
		return err
	}
	d.mu.Lock()
	for _, ai := range saved {
		if _, ok := d.mu.known[ai.ID]; !ok && ai.ID != d.h.ID() {
			d.mu.known[ai.ID] = &known{addrs: capAddrs(ai.Addrs), backoff: d.cfg.Backoff.Min}
		}
	}
	d.mu.Unlock()
	for range d.boot {
		d.m.found.WithLabelValues(sourceBootstrap).Inc()
	}

	nb := &network.NotifyBundle{DisconnectedF: d.disconnected}
	d.h.Network().Notify(nb)
	defer d.h.Network().StopNotify(nb)

	// On return: stop the loops first, then close what they use.
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	var closers []func() error
	defer func() {
		cancel()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()

	d.setMechanism(MechMDNS, StateOff, nil)
	d.setMechanism(MechDHT, StateOff, nil)
	if d.cfg.DHT {
		if err := d.startDHT(ctx, &wg, &closers); err != nil {
			d.setMechanism(MechDHT, StateFailed, err)
			d.log.Warn("dht discovery not started: peers are found only through bootstrap, known and mDNS peers; fix the cause or turn the DHT off (no_dht, --no-dht)", "err", err)
		} else {
			d.setMechanism(MechDHT, StateRunning, nil)
		}
	}
	if d.cfg.MDNS {
		if err := d.startMDNS(ctx, &wg, &closers); err != nil {
			d.setMechanism(MechMDNS, StateFailed, err)
			d.log.Warn("mdns discovery not started: peers on the LAN are not found by mDNS, dial them by address (barrel-peer connect) or through bootstrap peers, or turn mDNS off (no_mdns, --no-mdns); sync and everything else keep running", "err", err)
		} else {
			d.setMechanism(MechMDNS, StateRunning, nil)
		}
	}
	wg.Go(func() { d.redialLoop(ctx) })
	<-ctx.Done()
	d.setMechanism(MechMDNS, StateStopped, nil)
	d.setMechanism(MechDHT, StateStopped, nil)
	return nil
}

// startDHT starts the DHT and its rendezvous loop; closers get its close.
func (d *Discovery) startDHT(ctx context.Context, wg *sync.WaitGroup, closers *[]func() error) error {
	k, err := d.newDHT()
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.mu.dht = k
	d.mu.Unlock()
	*closers = append(*closers, func() error {
		d.mu.Lock()
		d.mu.dht = nil
		d.mu.Unlock()
		if err := k.Close(); err != nil {
			return fmt.Errorf("close dht: %w", err)
		}
		return nil
	})
	wg.Go(func() { d.rendezvousLoop(ctx, k) })
	return nil
}

// startMDNS starts mDNS and the loop taking its findings; closers get its
// close.
func (d *Discovery) startMDNS(ctx context.Context, wg *sync.WaitGroup, closers *[]func() error) error {
	found := make(chan peer.AddrInfo, 32)
	svc := mdns.NewMdnsService(d.h, d.cfg.MDNSService, notifee(found))
	if err := svc.Start(); err != nil {
		_ = svc.Close()
		return fmt.Errorf("start mdns: %w", err)
	}
	*closers = append(*closers, func() error {
		if err := svc.Close(); err != nil {
			return fmt.Errorf("close mdns: %w", err)
		}
		return nil
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ai := <-found:
				d.found(ctx, sourceMDNS, ai)
			}
		}
	})
	return nil
}

// notifee hands mDNS findings to Run without blocking mDNS: when the
// channel is full the finding is dropped (the next mDNS round repeats it).
type notifee chan peer.AddrInfo

// HandlePeerFound implements mdns.Notifee.
func (n notifee) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case n <- ai:
	default:
	}
}

// rendezvousLoop advertises and looks up every namespace at once, then
// every Config.Rendezvous and whenever Advertise adds one, until ctx ends.
func (d *Discovery) rendezvousLoop(ctx context.Context, k *dht.IpfsDHT) {
	rd := drouting.NewRoutingDiscovery(k)
	t := time.NewTicker(d.cfg.Rendezvous)
	defer t.Stop()
	for {
		d.mu.Lock()
		nss := make([]string, 0, len(d.mu.ns))
		for ns := range d.mu.ns {
			nss = append(nss, ns)
		}
		d.mu.Unlock()
		for _, ns := range nss {
			d.rendezvous(ctx, rd, ns)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.rdWake:
		}
	}
}

// rendezvous advertises us under ns and connects the peers found there.
// Failures are normal while the routing table is empty; they are logged at
// Debug and retried next round.
func (d *Discovery) rendezvous(ctx context.Context, rd *drouting.RoutingDiscovery, ns string) {
	ctx, cancel := context.WithTimeout(ctx, rendezvousTimeout)
	defer cancel()
	log := d.log.With("ns", ns)
	if _, err := rd.Advertise(ctx, ns); err != nil {
		log.Debug("rendezvous advertise failed", "err", err)
	}
	peers, err := rd.FindPeers(ctx, ns, discovery.Limit(maxRendezvousPeers))
	if err != nil {
		log.Debug("rendezvous lookup failed", "err", err)
		return
	}
	for ai := range peers {
		d.found(ctx, sourceDHT, ai)
	}
}
