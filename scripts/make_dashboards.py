#!/usr/bin/env python3
"""Writes dashboards/*.json: Grafana dashboards over the metrics srlm-actors exports.

The datasource is the `${DS_PROMETHEUS}` import input, so each file imports into Grafana as is.
Run from the repo root: python3 scripts/make_dashboards.py
"""
import json
import pathlib

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def panel(pid, title, exprs, x, y, unit="short", w=12, h=8, legend=None):
    targets = []
    for i, e in enumerate(exprs):
        expr, fmt = e if isinstance(e, tuple) else (e, None)
        t = {"datasource": DS, "expr": expr, "refId": chr(ord("A") + i)}
        if fmt:
            t["legendFormat"] = fmt
        targets.append(t)
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": targets,
    }


def dashboard(uid, title, panels):
    return {
        "__inputs": [{
            "name": "DS_PROMETHEUS", "label": "Prometheus", "description": "Prometheus scraping srlm train's /metrics",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
        ],
        "uid": uid,
        "title": title,
        "tags": ["srlm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": [dict(p, id=i + 1) for i, p in enumerate(panels)],
    }


def grid(specs):
    """Lays panels two per row."""
    return [panel(0, *s[:2], x=(i % 2) * 12, y=(i // 2) * 8, **(s[2] if len(s) > 2 else {})) for i, s in enumerate(specs)]


training = dashboard("srlm-training", "srlm: training progress", grid([
    ("Reward mean per function", [("srlm_reward_mean", "{{function}}")]),
    ("Accuracy", [("srlm_accuracy_ratio", "accuracy")], {"unit": "percentunit"}),
    ("Loss", [("srlm_learner_loss", "loss")]),
    ("KL to reference", [("srlm_learner_kl", "kl")]),
    ("Clip fraction", [("srlm_learner_clip_ratio", "clipped")], {"unit": "percentunit"}),
    ("Entropy", [("srlm_learner_entropy_nats", "entropy")]),
    ("Gradient norm", [("srlm_learner_grad_norm", "grad norm")]),
    ("Learning rate", [("srlm_learner_learning_rate", "lr")]),
    ("Policy version and steps/min", [("srlm_policy_version", "version"), ("rate(srlm_learner_steps_total[5m]) * 60", "steps/min")]),
    ("Groups trained / dropped per minute", [
        ("rate(srlm_learner_groups_total[5m]) * 60", "trained"),
        ("sum by (reason) (rate(srlm_learner_groups_dropped_total[5m])) * 60", "dropped {{reason}}"),
    ]),
]))

throughput = dashboard("srlm-throughput", "srlm: throughput and overlap", grid([
    ("Generated tokens/s", [("sum by (generator) (rate(srlm_generator_tokens_total[1m]))", "generator {{generator}}")]),
    ("Groups generated / scored / trained per second", [
        ("sum(rate(srlm_generator_groups_total[1m]))", "generated"),
        ("sum(rate(srlm_scorer_groups_total[1m]))", "scored"),
        ("rate(srlm_learner_groups_total[1m])", "trained"),
    ]),
    ("Busy fraction (windowed)", [
        ("rate(srlm_generator_group_seconds_sum[1m])", "generator {{generator}}"),
        ("rate(srlm_learner_step_seconds_sum[1m])", "learner"),
    ], {"unit": "percentunit"}),
    ("Busy fraction (since start)", [
        ("srlm_generator_busy_ratio", "generator {{generator}}"),
        ("srlm_learner_busy_ratio", "learner"),
    ], {"unit": "percentunit"}),
    # Matching on every label: `on (queue)` alone is a many-to-many error once Prometheus
    # scrapes two runs (two instances with the same queue names).
    ("Queue fill", [("srlm_queue_depth / srlm_queue_capacity", "{{queue}}")], {"unit": "percentunit"}),
    ("Generator backpressure wait (p90)", [
        ("histogram_quantile(0.9, sum by (le, generator) (rate(srlm_generator_wait_seconds_bucket[5m])))", "generator {{generator}}"),
    ], {"unit": "s"}),
    ("Group sampling time (p50, p90)", [
        ("histogram_quantile(0.5, sum by (le) (rate(srlm_generator_group_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.9, sum by (le) (rate(srlm_generator_group_seconds_bucket[5m])))", "p90"),
    ], {"unit": "s"}),
    ("Learner step time (mean, p90)", [
        ("rate(srlm_learner_step_seconds_sum[5m]) / rate(srlm_learner_step_seconds_count[5m])", "mean"),
        ("histogram_quantile(0.9, sum by (le) (rate(srlm_learner_step_seconds_bucket[5m])))", "p90"),
    ], {"unit": "s"}),
]))

health = dashboard("srlm-health", "srlm: health", grid([
    ("Actor restarts (per 10 min)", [("sum by (role) (increase(srlm_actor_restarts_total[10m]))", "{{role}}")]),
    ("Staleness of groups reaching the learner", [
        ("histogram_quantile(0.5, sum by (le) (rate(srlm_group_staleness_versions_bucket[5m])))", "p50"),
        ("histogram_quantile(1, sum by (le) (rate(srlm_group_staleness_versions_bucket[5m])))", "max"),
        ("rate(srlm_group_staleness_versions_sum[5m]) / rate(srlm_group_staleness_versions_count[5m])", "mean"),
    ]),
    ("Dropped (stale) share of groups", [
        # Every term summed: a bare rate() keeps job and instance, which sum() drops, so
        # `sum + rate` matched no series and the panel had no data (tests/monitoring_prometheus).
        ("sum(rate(srlm_learner_groups_dropped_total[5m])) / (sum(rate(srlm_learner_groups_dropped_total[5m])) + sum(rate(srlm_learner_groups_total[5m])))", "dropped"),
    ], {"unit": "percentunit"}),
    ("Queue depth", [("srlm_queue_depth", "{{queue}}"), ("srlm_queue_capacity", "{{queue}} capacity")]),
    ("Checkpoint time", [
        ("rate(srlm_checkpoint_seconds_sum[30m]) / rate(srlm_checkpoint_seconds_count[30m])", "mean"),
        ("max_over_time(srlm_checkpoint_seconds_count[1h])", "checkpoints written"),
    ], {"unit": "s"}),
    ("Steps in the last 10 minutes (0: stalled)", [("increase(srlm_learner_steps_total[10m])", "steps")]),
]))

# Workers on other nodes (`srlm train --listen`): their generators and scorers carry the label
# `node-<worker id>` in the throughput panels; these are the cluster's own.
cluster = dashboard("srlm-cluster", "srlm: workers on other nodes", grid([
    ("Workers joined", [("srlm_remote_workers", "workers")]),
    ("Groups generated per node (per minute; tokens/s in srlm: throughput)", [
        ("sum by (generator) (rate(srlm_generator_groups_total[1m])) * 60", "generator {{generator}}"),
    ]),
    ("Groups scored per node (per minute)", [("sum by (scorer) (rate(srlm_scorer_groups_total[1m])) * 60", "scorer {{scorer}}")]),
    ("Weight download time per worker (mean)", [
        ("rate(srlm_weight_transfer_seconds_sum[5m]) / rate(srlm_weight_transfer_seconds_count[5m])", "{{worker}}"),
    ], {"unit": "s"}),
    ("Weight download rate per worker", [("rate(srlm_weight_transfer_bytes_total[1m])", "{{worker}}")], {"unit": "Bps"}),
    ("Frames refused (per 10 min)", [("sum by (reason) (increase(srlm_remote_frames_refused_total[10m]))", "{{reason}}")]),
]))

out = pathlib.Path("dashboards")
for name, d in [("training", training), ("throughput", throughput), ("health", health), ("cluster", cluster)]:
    (out / f"srlm-{name}.json").write_text(json.dumps(d, indent=2) + "\n")
