// The queue hooks the operator hands its work queues land in /metrics under each queue's label.
import { expect, it } from '@jest/globals';
import { Metrics } from '../../../src/engine/metrics.js';

it('records a queue\'s wait, depth, runs and retries under its own label', async () => {
  const m = new Metrics();
  const hooks = m.queueHooks('containment');
  hooks.queueLatency?.(0.2);
  hooks.queueLatency?.(0.05);
  hooks.depth?.(3);
  hooks.reconciled?.(1.5, 'requeue');
  hooks.retry?.('ns/a', 1, 250);
  const text = await m.registry.metrics();
  expect(text).toContain('casefile_workqueue_queue_duration_seconds_count{queue="containment"} 2');
  expect(text).toContain('casefile_workqueue_queue_duration_seconds_sum{queue="containment"} 0.25');
  expect(text).toContain('casefile_workqueue_queue_duration_seconds_bucket{le="0.1",queue="containment"} 1');
  expect(text).toContain('casefile_workqueue_depth{queue="containment"} 3');
  expect(text).toContain('casefile_reconcile_duration_seconds_count{queue="containment",outcome="requeue"} 1');
  expect(text).toContain('casefile_workqueue_retries_total{queue="containment"} 1');
});
