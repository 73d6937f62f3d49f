package main

import (
	"context"
	"fmt"
)

// Cluster scenarios: what replication costs. The catch-up workloads of
// scenarios_incr.go run through a 3-node cluster on this machine
// (sluice_cluster.go: three `sluice node` processes, Raft with three
// voters, task streams with three replicas) against the same workload
// through one `sluice up`, which is the yardstick: ratio = single-node
// time / cluster time. The nodes share the machine's cores, so the cluster
// gains no CPU and pays for every change stored three times and for
// Raft's heartbeats; the target (issue 22) is that it keeps 0.8 of the
// single node's throughput. Native replication runs beside them as a
// reference, not in the ratio.
const (
	clusterSluiceDB = "cluster_sluice"
	clusterNativeDB = "cluster_native"
)

// clusterTargetRatio is the share of the single node's throughput the
// cluster must keep.
const clusterTargetRatio = 0.8

func clusterCases(scale float64) []incrCase {
	var list []incrCase
	for _, w := range workloads(scale) {
		if w.Name == "insert" || w.Name == "update" {
			list = append(list, incrCase{Name: "cluster/" + w.Name, Mode: "catchup", W: w, Nodes: clusterNodes})
		}
	}
	return list
}

func (b *bench) runCluster(ctx context.Context) error {
	cases := b.wantedCases(clusterCases(b.cfg.Scale))
	if len(cases) == 0 {
		return nil
	}
	if len(b.cfg.SluiceArgs) > 0 {
		logf("note: --sluice-args apply to the single node (sluice up) only; the cluster's nodes run with their configuration's defaults")
	}
	if err := b.createBenchDatabases(ctx, clusterSluiceDB, clusterNativeDB); err != nil {
		return err
	}
	defer b.dropDatabases(clusterSluiceDB, clusterNativeDB)
	env, err := b.openPairEnv(ctx, clusterSluiceDB, clusterNativeDB, "bench_cluster", []string{benchTable})
	if err != nil {
		return err
	}
	defer env.Close()
	for _, c := range cases {
		single := c
		single.Nodes = 0
		s := &scenario{
			Name: c.Name, Unit: "s", Rows: c.W.Rows,
			Description: fmt.Sprintf("catch-up after a pause: %s; timed from resume to the end marker at the destination; Sluice is a %d-node cluster (Raft %d voters, stream replicas %d), the yardstick one sluice up; native replication for reference",
				c.W.What, c.Nodes, c.Nodes, c.Nodes),
			Sluice: side{Name: fmt.Sprintf("%d-node cluster", c.Nodes)}, Yardstick: &side{Name: "single"},
			Reference: &side{Name: "native"},
			Target:    target{MinRatio: clusterTargetRatio, MaxRSSBytes: rssLimit},
		}
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			r, err := b.incrSluice(ctx, env, c, rep)
			if err != nil {
				s.Error = fmt.Sprintf("cluster rep %d: %v", rep, err)
				break
			}
			s.Sluice.Runs = append(s.Sluice.Runs, r)
			logf("%s rep %d/%d cluster: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
			if r, err = b.incrSluice(ctx, env, single, rep); err != nil {
				s.Error = fmt.Sprintf("single rep %d: %v", rep, err)
				break
			}
			s.Yardstick.Runs = append(s.Yardstick.Runs, r)
			logf("%s rep %d/%d single: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
			if r, err = b.incrNative(ctx, env, c, rep); err != nil {
				s.Error = fmt.Sprintf("native rep %d: %v", rep, err)
				break
			}
			s.Reference.Runs = append(s.Reference.Runs, r)
			logf("%s rep %d/%d native: %s", s.Name, rep, b.cfg.Reps, runLine(r, s.Unit))
		}
		b.add(s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
