"""depth_node's /diagnostics status: the level, one message saying what is wrong (or 'running'),
and the values, under the key names every node of the package uses."""
from __future__ import annotations

import time

from .diagnostics import ERROR, OK, WARN

REPEAT_LOG_S = 60.0  # a condition that lasts is logged again this often


class _ConditionLog:
    """Logs a lasting condition (no input, all-NaN output) once when it starts, then at most every
    REPEAT_LOG_S while it lasts; keyed on the condition's name (a string: compares equal)."""

    def __init__(self, log, clock=time.monotonic):
        self._log, self._clock = log, clock
        self._logged: dict[str, float] = {}

    def say(self, name: str, text: str) -> None:
        now = self._clock()
        if name not in self._logged or now - self._logged[name] >= REPEAT_LOG_S:
            self._logged[name] = now
            self._log(text)

    def over(self, name: str) -> None:
        self._logged.pop(name, None)


class DepthNodeStatus:
    """``report()`` → (level, message, values) for DiagnosticsPublisher; counts what is new since
    the last report (drops, errors, lost messages, all-NaN frames) and how long no image came."""

    def __init__(self, node, clock=time.monotonic):
        self.node = node
        self._clock = clock
        self._last_dropped = 0
        self._last_errors = 0
        self._last_all_nan = 0
        self._received = 0
        self._last_input = clock()  # activation: the silence is counted from here
        self._conditions = _ConditionLog(node.get_logger().warning, clock)

    def _silence(self, received: int) -> float:
        """Seconds since the last image arrived (or since activation)."""
        now = self._clock()
        if received != self._received:
            self._received, self._last_input = received, now
        return now - self._last_input

    def _no_input(self, seconds: float) -> str:
        node = self.node
        topic = node.input_topics[0]
        publishers = node.count_publishers(topic)
        if publishers == 0:
            why = ('nothing publishes there: check the camera driver and the remapping '
                   '(image:=<topic>, image_transport)')
        else:
            why = (f'{publishers} publisher(s) but nothing arrives: the camera stalled, its QoS does not '
                   "match (qos.subscription), or its frames are too large for the transport (README, 'Large "
                   "messages over Fast DDS')")
        return f"no image on '{topic}' for {seconds:.0f} s: {why}"

    def report(self):
        node = self.node
        stats = node.worker.stats()
        with node._stats_lock:
            errors, last_error, idle, published = node.errors, node.last_error, node.idle_frames, node.published_frames
        new_drops, self._last_dropped = stats['dropped'] - self._last_dropped, stats['dropped']
        new_errors, self._last_errors = errors - self._last_errors, errors
        input_rate, output_rate = node.input_rate.rate(), node.output_rate.rate()
        latency, inference = node.latency.summary(), node.inference_time.summary()
        level, message = OK, 'running'
        if not node.wanted_outputs():
            message = 'idle: no subscriber on any depth output'
        if new_drops > 0:
            level = WARN
            message = (f'model cannot keep up: input {input_rate:.1f} Hz, output {output_rate:.1f} Hz, '
                       f"inference {inference['mean'] * 1e3:.0f} ms; {new_drops} frame(s) dropped")
            node.get_logger().warning(message + ' (latest frame wins; reduce model.steps, '
                                      'model.target_area or the camera rate)', throttle_duration_sec=10.0)
        if new_errors > 0:
            level = ERROR if published == 0 else WARN
            message = f'{new_errors} bad frame(s): {last_error}'
        monitor = node._subscriptions_handle.monitor if node._subscriptions_handle is not None else None
        unpaired = monitor.problem if monitor is not None else None
        if unpaired and level == OK:  # images arrive, nothing pairs: say why, not "running"
            level, message = WARN, unpaired
        silence = self._silence(monitor.primaries if monitor is not None else node.input_rate.total)
        if silence >= node.params['diagnostics.no_input_timeout']:
            text = self._no_input(silence)
            self._conditions.say('no input', text)
            if level == OK:
                level, message = WARN, text
        else:
            self._conditions.over('no input')
        with node._stats_lock:
            all_nan = node.all_nan_frames
        new_all_nan, self._last_all_nan = all_nan - self._last_all_nan, all_nan
        if new_all_nan > 0:
            text = f'{new_all_nan} frame(s) published with no valid depth (all NaN): {node.last_all_nan}'
            self._conditions.say('all NaN', text)
            message = text if level == OK else f'{message}; {text}'
            level = WARN if level == OK else level
        else:
            self._conditions.over('all NaN')
        rectification = node.pipeline.rectification
        if rectification.failed and level == OK:  # logged once per calibration by the pipeline
            level, message = WARN, f'rectification {rectification.state}'
        new_lost = node.lost_messages.new_since_last_call()
        if new_lost > 0:
            lost = (f'{new_lost} message(s) lost in transport before reaching the node (frames too large '
                    'for a best-effort subscription, or a full subscription queue?)')
            message = lost if level == OK else f'{message}; {lost}'
            level = ERROR if level == ERROR else WARN
            node.get_logger().warning(lost + ": set qos.subscription 'reliable', or see the README, "
                                      "'Large messages over Fast DDS'", throttle_duration_sec=10.0)
        describe, params, pipeline, scale = node._describe, node.params, node.pipeline, node.last_scale
        values = {
            'input rate (Hz)': input_rate, 'output rate (Hz)': output_rate,
            'latency stamp to publish mean (s)': latency['mean'], 'latency stamp to publish max (s)': latency['max'],
            'inference time mean (s)': inference['mean'], 'inference time max (s)': inference['max'],
            'frames received': node.input_rate.total, 'frames published': published,
            'frames dropped (model busy)': stats['dropped'], 'frames failed': errors,
            'frames skipped (no subscribers)': idle, 'queue': stats['pending'],
            'messages lost in transport': node.lost_messages.total(),
            'frames published all NaN': all_nan, 'seconds since the last image': silence,
            'input reliability': node.input_reliability,
            'model': describe.get('model', type(node.estimator).__name__),
            'device': describe.get('device', ''), 'precision': describe.get('precision', ''),
            'steps': node.estimator.steps, 'model resolution': describe.get('resolution', ''),
            'output resolution': params['output.resolution'],
            'temporal mode': params['temporal.mode'], 'pairing': node.pairing,
            'scale source': scale.source if scale else '',
            'scale': f'a={scale.a:.4g} b={scale.b:.4g}' if scale else '',
            'scale message': scale.message if scale else '',
            'metric passes': pipeline.scale.passes,
            'input topics': ' + '.join(node.input_topics), 'rectification': pipeline.rectification.state,
            **_video_values(params, pipeline),
            'last error': last_error,
            **(monitor.values() if monitor is not None else {}),
        }
        return level, message, values


def _video_values(params, pipeline) -> dict:
    if params['temporal.mode'] != 'video':
        return {}
    new = params['temporal.video_new_frames']
    return {'video window': f'{new + 3} frames: 3 keyframes + {new} new',
            'video frames waiting for their window': pipeline.temporal.pending,
            'video windows run': pipeline.temporal.windows_run}
