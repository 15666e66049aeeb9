package client

import (
	"context"
	"iter"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Runners iterates over every runner matching o, fetching page after page
// (o.Limit per page, the api's default when 0) until the last; o.Cursor,
// when set, is where it starts. An error ends the iteration after it is
// yielded once:
//
//	for r, err := range c.Runners(ctx, client.ListOptions{Status: client.RunnersOnline}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(r.ID)
//	}
func (c *Client) Runners(ctx context.Context, o ListOptions) iter.Seq2[wire.RunnerInfo, error] {
	return pages(func(cursor string) ([]wire.RunnerInfo, string, error) {
		o.Cursor = cursor
		l, err := c.ListRunners(ctx, o)
		return l.Runners, l.NextCursor, err
	}, o.Cursor)
}

// Tasks iterates over every task of runnerID matching q, newest first, page
// after page (q.Wait is ignored: a listing of many pages does not wait).
func (c *Client) Tasks(ctx context.Context, runnerID string, q TaskQuery) iter.Seq2[wire.RunnerTask, error] {
	q.Wait = 0
	return pages(func(cursor string) ([]wire.RunnerTask, string, error) {
		q.Cursor = cursor
		l, err := c.ListTasks(ctx, runnerID, q)
		return l.Tasks, l.NextCursor, err
	}, q.Cursor)
}

// AllTasks iterates over the tasks of every runner matching f, newest
// first, page after page (filtered pages may be short; it follows them to
// the end).
func (c *Client) AllTasks(ctx context.Context, f TaskFilter) iter.Seq2[wire.RunnerTask, error] {
	return pages(func(cursor string) ([]wire.RunnerTask, string, error) {
		f.Cursor = cursor
		l, err := c.ListAllTasks(ctx, f)
		return l.Tasks, l.NextCursor, err
	}, f.Cursor)
}

// pages turns a page fetcher into an iterator. It stops on the last page,
// on an error (yielded once, with a zero value), or when the consumer stops.
func pages[T any](fetch func(cursor string) ([]T, string, error), cursor string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			items, next, err := fetch(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" || next == cursor {
				return
			}
			cursor = next
		}
	}
}
