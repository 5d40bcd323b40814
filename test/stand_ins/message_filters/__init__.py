"""Test-only stand-in for ROS 2 `message_filters` (not installable from PyPI).

It provides the part of the API that `ppd_ros.nodes.pairing.subscribe_pair` uses — `Subscriber`,
`ApproximateTimeSynchronizer`, `registerCallback` — and follows the algorithm of upstream's
Python `ApproximateTimeSynchronizer.add` step for step (written here from its description, not
copied), so that it serves two purposes:

* with `test/stand_ins` on PYTHONPATH (.ci/run does this for the node tests), the nodes take
  their message_filters branch, as on a real ROS install;
* `test/test_pairing.py` uses it as the reference the in-package fallback pairer must match.

Upstream's algorithm, per incoming message of input i:
1. store it in queue i keyed by its stamp in ns (a repeated stamp replaces the message but keeps
   its place in the dict), then delete the smallest stamps while the queue holds > queue_size;
2. for each other queue, list its stamps with |s - stamp| <= slop (rclpy Duration comparison;
   the slop is Duration(seconds=slop), i.e. truncated to whole ns), stably sorted by |s - stamp|;
   any empty list ends the call;
3. walk the cartesian product of those lists in order, with the new stamp inserted at position i;
   the first combination whose spread max - min is < slop and whose stamps are all still in their
   queues (the new message may have been trimmed in step 1) is signalled and removed.
Upstream signals while holding its lock.
"""
from __future__ import annotations

import itertools
import threading

from rclpy.duration import Duration
from rclpy.time import Time


class SimpleFilter:
    def __init__(self):
        self.callbacks = {}

    def registerCallback(self, cb, *args):  # noqa: N802 - upstream's name
        connection = len(self.callbacks)
        self.callbacks[connection] = (cb, args)
        return connection

    def signalMessage(self, *msg):  # noqa: N802 - upstream's name
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """Subscriber(node, msg_type, topic, qos_profile=…, **kwargs): a subscription as a filter."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.node = args[0]
        self.topic = args[2]
        kwargs.setdefault('qos_profile', 10)
        self.sub = self.node.create_subscription(*args[1:], self.callback, **kwargs)

    def callback(self, msg):
        self.signalMessage(msg)

    def getTopic(self):  # noqa: N802 - upstream's name
        return self.topic


class ApproximateTimeSynchronizer(SimpleFilter):
    """ApproximateTimeSynchronizer(fs, queue_size, slop): upstream's matching (see the module)."""

    def __init__(self, fs, queue_size, slop, allow_headerless=False):
        super().__init__()
        self.queue_size = queue_size
        self.slop = Duration(seconds=slop)
        self.allow_headerless = allow_headerless
        self.lock = threading.Lock()
        self.queues = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, queue, index)
                                  for index, (f, queue) in enumerate(zip(fs, self.queues))]

    def add(self, msg, my_queue, my_queue_index=None):
        stamp = Time.from_msg(msg.header.stamp)
        with self.lock:
            my_queue[stamp.nanoseconds] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            others = self.queues if my_queue_index is None else \
                self.queues[:my_queue_index] + self.queues[my_queue_index + 1:]
            options = []
            for queue in others:
                near = []
                for s in queue:
                    delta = Duration(nanoseconds=abs(s - stamp.nanoseconds))
                    if delta > self.slop:
                        continue
                    near.append((Time(nanoseconds=s, clock_type=stamp.clock_type), delta))
                if not near:
                    return
                near.sort(key=lambda entry: entry[1])
                options.append([t for t, _ in near])
            for combination in itertools.product(*options):
                times = list(combination)
                if my_queue_index is not None:
                    times.insert(my_queue_index, stamp)
                chosen = list(zip(self.queues, times))
                if max(times) - min(times) < self.slop and \
                        all(t.nanoseconds in queue for queue, t in chosen):
                    msgs = [queue[t.nanoseconds] for queue, t in chosen]
                    self.signalMessage(*msgs)
                    for queue, t in chosen:
                        del queue[t.nanoseconds]
                    break
