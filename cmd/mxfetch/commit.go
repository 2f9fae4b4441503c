package main

import (
	"sync"
	"time"
)

// This file holds the batch durability of an output directory. A file must be complete and on the
// disk before it takes its name, and its name on the disk too before mxfetch reports it (and exits
// 0). Syncing each file on its own costs an fsync, with a journal commit, a file; the committer
// instead gathers the files that finish while it works and commits them together (outDir.commit):
// one syncfs(2) for their data, the renames, one fsync of the directory. It works beside the
// downloads, so that only the last batch's sync is left when the last download ends.

// Batching bounds.
const (
	// commitEvery is how many finished files make a batch worth committing at once.
	commitEvery = 64
	// commitAfter is how long a finished file waits at most for others to join its batch.
	commitAfter = 20 * time.Millisecond
	// maxBatch bounds a batch, and so the files held open.
	maxBatch = 256
)

// committer commits the files of an output directory in batches and reports each once committed.
type committer struct {
	dir    *outDir
	report func(*pending)

	mu     sync.Mutex
	cond   *sync.Cond // signalled when the queue changes, the wait is over or the committer closes
	queue  []*pending
	due    bool        // the oldest queued file waited commitAfter
	timer  *time.Timer // runs out commitAfter after the first file of a batch is queued
	closed bool
	done   chan struct{}
}

func newCommitter(dir *outDir, report func(*pending)) *committer {
	c := &committer{dir: dir, report: report, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	c.timer = time.AfterFunc(time.Hour, func() {
		c.mu.Lock()
		c.due = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	c.timer.Stop()
	go c.loop()
	return c
}

// add queues a finished file. It waits while the queue is full: the disk sets the pace.
func (c *committer) add(p *pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) >= maxBatch {
		c.cond.Wait()
	}
	c.queue = append(c.queue, p)
	switch len(c.queue) {
	case 1:
		c.due = false
		c.timer.Reset(commitAfter)
	case commitEvery:
		c.cond.Broadcast()
	}
}

// close commits what is queued and returns once every file is reported.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	<-c.done
	c.timer.Stop()
}

func (c *committer) loop() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for !(c.closed || c.due && len(c.queue) > 0 || len(c.queue) >= commitEvery) {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return // closed
		}
		batch := c.queue
		c.queue, c.due = make([]*pending, 0, min(len(batch), maxBatch)), false
		c.timer.Stop()
		c.cond.Broadcast() // room for the waiting adds
		c.mu.Unlock()

		c.dir.commit(batch)
		for _, p := range batch {
			c.report(p)
		}
	}
}
