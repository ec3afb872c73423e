#!/usr/bin/env python3
"""Writes the Grafana dashboards in this directory (mqscope-*.json) from the panel lists below.

The JSON files are what users import; this script is how they are kept consistent (one
datasource input, the same template variables, the same label selectors everywhere).
Edit here, then run `python3 dashboards/generate.py`; `--check` fails if a JSON file differs
from what the script would write (tests/dashboards_json.rs runs it).

Metrics: docs/metrics.md. Counters are only ever read through rate()/increase() with
$__rate_interval; quantiles come from histogram_quantile over `sum by (le, ...)` of bucket
rates; heatmaps plot bucket rates with format=heatmap.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Every mqscope series is filtered by the cluster and pod variables. Outside Kubernetes the
# labels are absent and the variables' "All" value (.*) still matches.
S = 'cluster=~"$cluster", pod=~"$pod"'
T = S + ', topic=~"$topic"'
R = "[$__rate_interval]"
JOB = 'job=~".*mqscope.*", ' + S
T_IN = T + ', direction="in"'
T_OUT = T + ', direction="out"'


def rate(metric, sel=S, by=None, fn="rate"):
    inner = f"{fn}({metric}{{{sel}}}{R})"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(q, bucket, sel, by):
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}{{{sel}}}{R})))"


def ts(title, targets, unit="short", desc="", w=12, h=8, stack=False):
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "targets": targets,
        "unit": unit,
        "w": w,
        "h": h,
        "stack": stack,
    }


def stat(title, targets, unit="short", desc="", w=6, h=4, no_value=None):
    # no_value: what to show when the query has no series (e.g. no alert at all).
    return {"type": "stat", "title": title, "description": desc, "targets": targets,
            "unit": unit, "w": w, "h": h, "no_value": no_value}


def heatmap(title, expr, unit="s", desc="", repeat=None, w=12, h=8):
    return {"type": "heatmap", "title": title, "description": desc,
            "targets": [(expr, "{{le}}")], "unit": unit, "w": w, "h": h, "repeat": repeat}


def table(title, targets, desc="", w=12, h=8):
    return {"type": "table", "title": title, "description": desc, "targets": targets,
            "unit": "short", "w": w, "h": h}


def row(title):
    return {"type": "row", "title": title}


# ---------------------------------------------------------------------------------------
OVERVIEW = [
    row("Broker ($SYS)"),
    stat("Broker", [(f"mqscope_broker_info{{{S}}}", "{{kind}} {{version}} {{pod}} {{node}}")],
         desc="Broker kind and version from $SYS, one per broker node."),
    stat("Broker uptime", [(f"min(mqscope_broker_uptime_seconds{{{S}}})", "uptime")], unit="s",
         desc="Shortest uptime over the selected brokers: a recent restart shows here."),
    stat("Broker restarts (range)", [(f"sum(increase(mqscope_broker_restarts_total{{{S}}}[$__range]))", "restarts")],
         desc="Broker restarts mqscope detected (uptime going backwards) in the time range."),
    stat("Broker clients connected", [(f"sum(mqscope_broker_clients_connected{{{S}}})", "connected")]),
    ts("Broker clients", [
        (f"sum by (pod) (mqscope_broker_clients_connected{{{S}}})", "connected {{pod}}"),
        (f"sum by (pod) (mqscope_broker_clients_known{{{S}}})", "known {{pod}}"),
    ], desc="The broker's own client counts ($SYS): connected, and known (connected + persistent sessions)."),
    ts("Broker messages/s", [
        (rate("mqscope_broker_messages_received_total", by="pod"), "received {{pod}}"),
        (rate("mqscope_broker_messages_sent_total", by="pod"), "sent {{pod}}"),
    ], unit="ops", desc="PUBLISH messages the broker reports in $SYS."),
    ts("Broker bytes/s", [
        (rate("mqscope_broker_received_bytes_total", by="pod"), "received {{pod}}"),
        (rate("mqscope_broker_sent_bytes_total", by="pod"), "sent {{pod}}"),
    ], unit="Bps"),
    ts("Broker retained messages and subscriptions", [
        (f"sum by (pod) (mqscope_broker_retained_messages{{{S}}})", "retained {{pod}}"),
        (f"sum by (pod) (mqscope_broker_subscriptions{{{S}}})", "subscriptions {{pod}}"),
    ]),
    row("Wire traffic (capture)"),
    ts("MQTT packets/s by direction", [(rate("mqscope_mqtt_packets_total", by="direction"), "{{direction}}")],
       unit="pps", desc="Control packets seen on the wire: in = client to broker, out = broker to client."),
    ts("MQTT bytes/s by direction", [(rate("mqscope_mqtt_bytes_total", by="direction"), "{{direction}}")], unit="Bps"),
    ts("PUBLISH messages/s by direction", [(rate("mqscope_topic_messages_total", sel=T, by="direction"), "{{direction}}")],
       unit="ops", desc="Messages into the broker (in) and deliveries to subscribers (out), over the selected topic groups."),
    ts("Packets/s by type", [(rate("mqscope_mqtt_packets_total", by="type"), "{{type}}")], unit="pps", stack=True),
    ts("Latency p99 by exchange", [(quantile(0.99, "mqscope_latency_seconds_bucket", S, "exchange"), "{{exchange}}")],
       unit="s", desc="Request → response latency measured passively on the wire (p99 over the rate interval)."),
    ts("Latency p50 by exchange", [(quantile(0.5, "mqscope_latency_seconds_bucket", S, "exchange"), "{{exchange}}")], unit="s"),
    row("Clients"),
    stat("Clients connected (wire)", [(f"sum(mqscope_clients_connected{{{S}}})", "clients")]),
    stat("Connections open (wire)", [(f"sum(mqscope_connections_open{{{S}}})", "connections")]),
    ts("Connection attempts/s by result", [(rate("mqscope_connections_total", by="result"), "{{result}}")], unit="ops"),
    row("Capture health"),
    stat("mqscope targets up", [(f"sum(up{{{JOB}}})", "up")], desc="Scrape targets answering."),
    stat("Capture drops (range)", [(f'sum(increase(mqscope_capture_dropped_total{{{S}}}[$__range]))', "dropped")],
         desc="Everything lost before or during analysis (units differ per stage: see the Health dashboard)."),
    ts("Frames captured/s", [(rate("mqscope_capture_packets_total", by="pod"), "{{pod}}")], unit="pps"),
    ts("Capture drops/s by stage", [(rate("mqscope_capture_dropped_total", by="stage"), "{{stage}}")]),
]

TOPICS = [
    row("Rates"),
    ts("Messages/s into the broker by topic group", [
        (f'topk(20, {rate("mqscope_topic_messages_total", sel=T_IN, by="topic")})', "{{topic}}")],
       unit="ops", desc="The 20 busiest selected topic groups by PUBLISH messages into the broker."),
    ts("Deliveries/s to subscribers by topic group", [
        (f'topk(20, {rate("mqscope_topic_messages_total", sel=T_OUT, by="topic")})', "{{topic}}")],
       unit="ops"),
    ts("Payload bytes/s by topic group", [
        (f'topk(20, {rate("mqscope_topic_bytes_total", sel=T, by="topic, direction")})', "{{topic}} {{direction}}")],
       unit="Bps"),
    ts("Fan-out: deliveries per inbound message", [
        (f'{rate("mqscope_topic_messages_total", sel=T_OUT, by="topic")}'
         f' / {rate("mqscope_topic_messages_total", sel=T_IN, by="topic")}', "{{topic}}")],
       desc="Copies leaving the broker per message entering it, per topic group (NaN while a group is idle)."),
    ts("Fan-out outcome/s", [(rate("mqscope_fanout_messages_total", by="delivered"), "delivered {{delivered}}")],
       unit="ops", desc="Inbound PUBLISHes whose fan-out window closed, by copies seen leaving: 0 = nobody received it."),
    ts("Topic groups", [(f"sum by (kind) (mqscope_topic_groups{{{S}}})", "{{kind}}")],
       desc="Live topic groups: exact topics, templates, and __other__."),
    row("Payload sizes"),
    ts("Payload size p50 / p99 by topic group", [
        (quantile(0.5, "mqscope_payload_size_bytes_bucket", T, "topic"), "p50 {{topic}}"),
        (quantile(0.99, "mqscope_payload_size_bytes_bucket", T, "topic"), "p99 {{topic}}"),
    ], unit="bytes"),
    ts("Mean payload size by topic group", [
        (f'{rate("mqscope_payload_size_bytes_sum", sel=T, by="topic")} / {rate("mqscope_payload_size_bytes_count", sel=T, by="topic")}',
         "{{topic}}")], unit="bytes"),
    heatmap("Payload size distribution", f"sum by (le) (rate(mqscope_payload_size_bytes_bucket{{{T}}}{R}))",
            unit="bytes", desc="PUBLISH payload sizes into the broker, selected topic groups."),
    row("Latency per topic group"),
    ts("QoS 1 latency p99 by topic group", [
        (quantile(0.99, "mqscope_topic_latency_seconds_bucket", T + ', exchange="publish_qos1"', "topic"), "{{topic}}")],
       unit="s", desc="PUBLISH → PUBACK."),
    ts("QoS 2 latency p99 by topic group", [
        (quantile(0.99, "mqscope_topic_latency_seconds_bucket", T + ', exchange="publish_qos2"', "topic"), "{{topic}}")],
       unit="s", desc="PUBLISH → PUBCOMP, the whole flow."),
    ts("Fan-out latency p99 by topic group", [
        (quantile(0.99, "mqscope_topic_latency_seconds_bucket", T + ', exchange="fanout"', "topic"), "{{topic}}")],
       unit="s", desc="PUBLISH into the broker → the same message leaving toward a subscriber."),
    heatmap("Fan-out latency: $topic", f'sum by (le) (rate(mqscope_topic_latency_seconds_bucket{{{T}, exchange="fanout"}}{R}))',
            desc="One heatmap per selected topic group (repeated).", repeat="topic"),
    heatmap("QoS 1 latency: $topic", f'sum by (le) (rate(mqscope_topic_latency_seconds_bucket{{{T}, exchange="publish_qos1"}}{R}))',
            desc="One heatmap per selected topic group (repeated).", repeat="topic"),
]

CLIENTS = [
    row("Connections"),
    stat("Clients connected (wire)", [(f"sum(mqscope_clients_connected{{{S}}})", "clients")]),
    stat("Connections open (wire)", [(f"sum(mqscope_connections_open{{{S}}})", "connections")]),
    stat("Broker clients connected ($SYS)", [(f"sum(mqscope_broker_clients_connected{{{S}}})", "connected")]),
    stat("Broker clients maximum ($SYS)", [(f"max(mqscope_broker_clients_maximum{{{S}}})", "maximum")]),
    ts("Clients connected: wire vs broker", [
        (f"sum by (pod) (mqscope_clients_connected{{{S}}})", "wire {{pod}}"),
        (f"sum by (pod) (mqscope_broker_clients_connected{{{S}}})", "$SYS {{pod}}"),
        (f"sum by (pod) (mqscope_broker_clients_disconnected{{{S}}})", "$SYS disconnected persistent {{pod}}"),
    ], desc="mqscope's count from the wire against the broker's own; a gap means connections the capture does not see (TLS listeners, other pods)."),
    ts("Connection attempts/s by result", [(rate("mqscope_connections_total", by="result"), "{{result}}")], unit="ops"),
    ts("CONNECT → CONNACK latency", [
        (quantile(0.5, "mqscope_latency_seconds_bucket", S + ', exchange="connect"', "exchange"), "p50"),
        (quantile(0.99, "mqscope_latency_seconds_bucket", S + ', exchange="connect"', "exchange"), "p99"),
    ], unit="s"),
    ts("Disconnects and takeovers/s", [
        (rate("mqscope_events_total", sel=S + ', kind=~"disconnect|client_takeover"', by="kind"), "{{kind}}")], unit="ops"),
    row("Requests"),
    ts("Latency p99: subscribe, unsubscribe, ping", [
        (quantile(0.99, "mqscope_latency_seconds_bucket", S + ', exchange=~"subscribe|unsubscribe|ping"', "exchange"), "{{exchange}}")],
       unit="s"),
    ts("Unanswered requests/s by exchange", [(rate("mqscope_unanswered_total", by="exchange"), "{{exchange}}")], unit="ops",
       desc="Requests whose answer was not seen within unanswered_timeout_secs."),
    ts("Unmatched responses/s by exchange", [(rate("mqscope_unmatched_responses_total", by="exchange"), "{{exchange}}")], unit="ops"),
    ts("Client table fill", [
        (f'sum by (pod) (mqscope_table_entries{{{S}, table="clients"}}) / sum by (pod) (mqscope_table_capacity{{{S}, table="clients"}})', "{{pod}}")],
       unit="percentunit"),
    row("Per client (needs per_client_labels = true)"),
    ts("Top clients by messages/s", [
        (f'topk(10, {rate("mqscope_client_messages_total", by="client_id, direction")})', "{{client_id}} {{direction}}")],
       unit="ops", desc="Opt-in: [http] per_client_labels = true; at most max_client_series clients."),
    ts("Top clients by payload bytes/s", [
        (f'topk(10, {rate("mqscope_client_bytes_total", by="client_id, direction")})', "{{client_id}} {{direction}}")],
       unit="Bps"),
    table("Clients connected now", [(f"mqscope_client_connected{{{S}}} == 1", "{{client_id}}")]),
]

SECURITY_KINDS = ("connect_refused|auth_failure|subscribe_refused|publish_refused|unsubscribe_refused|acl_denied|"
                  "wildcard_subscribe|sys_subscribe|client_takeover|malformed|protocol_violation|auth_exchange")
SECURITY = [
    row("Authentication and authorisation"),
    stat("Auth failures (range)", [(f"sum(increase(mqscope_auth_failures_total{{{S}}}[$__range]))", "failures")]),
    stat("ACL denials (range)", [(f"sum(increase(mqscope_acl_denials_total{{{S}}}[$__range]))", "denials")]),
    stat("Refused connections (range)", [(f'sum(increase(mqscope_connections_total{{{S}, result="refused"}}[$__range]))', "refused")]),
    stat("mqscope alerts pending / firing", [
        ('count(ALERTS{alertname=~"Mqscope.*", ' + S + '})', "alerts")],
         desc="Prometheus alerts from rules/mqscope.rules.yml (pending or firing).", no_value="0"),
    ts("Auth failures/s by reason", [(rate("mqscope_auth_failures_total", by="reason"), "{{reason}}")], unit="ops",
       desc="Refused CONNECTs about credentials (wire CONNACK codes, EMQX authn events)."),
    ts("ACL denials/s by action", [(rate("mqscope_acl_denials_total", by="action"), "{{action}}")], unit="ops",
       desc="MQTT 5 PUBACK/PUBREC/SUBACK 0x87 on the wire, EMQX authz deny events."),
    row("Rule hits and alerts"),
    ts("Security events/s by kind", [
        (rate("mqscope_events_total", sel=S + f', kind=~"{SECURITY_KINDS}"', by="kind"), "{{kind}}")], unit="ops",
       desc="mqscope's detection rules: each event kind it raised."),
    table("Alerts (Prometheus)", [
        ('sum by (alertname, alertstate, severity, pod) (ALERTS{alertname=~"Mqscope.*", ' + S + '})', "{{alertname}} {{alertstate}}")],
        desc="mqscope alerts evaluated by Prometheus, pending and firing."),
    ts("mqscope detector alerts firing by rule", [
        (f"sum by (rule, severity) (mqscope_alerts_firing{{{S}}})", "{{rule}} {{severity}}")],
       desc="Security rules and anomaly detectors inside mqscope (the alerts sent to its receivers); "
            "a rule that fired once stays listed at 0."),
    ts("Malformed packets and protocol violations/s", [
        (rate("mqscope_decode_errors_total", by="kind"), "decode {{kind}}"),
        (rate("mqscope_protocol_violations_total", by="kind"), "violation {{kind}}"),
    ], unit="ops", desc="Undecodable packets and decoded packets breaking the protocol (evasion, broken or hostile clients)."),
    ts("Conflicting TCP overlaps/s", [(rate("mqscope_tcp_overlaps_conflicting_total", by="pod"), "{{pod}}")], unit="ops",
       desc="Overlapping segments whose bytes differ from the first copy: injection or evasion signal."),
    ts("Broker connection failures/s", [
        (rate("mqscope_events_total", sel=S + ', kind="broker_unreachable"', by="pod"), "{{pod}}")], unit="ops"),
    ts("TLS vs plain MQTT flows/s", [(rate("mqscope_flows_total", by="protocol"), "{{protocol}}")], unit="ops",
       desc="New TCP flows by classification; TLS flows are counted, not decoded."),
]

HEALTH = [
    row("Scrape"),
    stat("Targets up", [(f"sum(up{{{JOB}}})", "up")]),
    stat("Targets down", [(f"sum(1 - up{{{JOB}}})", "down")],
         desc="Scrape failures: the exporter's errors as Prometheus sees them."),
    stat("mqscope version", [(f"count by (version) (mqscope_build_info{{{S}}})", "{{version}}")]),
    stat("Samples per scrape", [(f"sum(scrape_samples_scraped{{{JOB}}})", "samples")]),
    ts("Scrape duration", [(f"max by (pod) (scrape_duration_seconds{{{JOB}}})", "{{pod}}")], unit="s"),
    ts("Target up", [(f"max by (pod, instance) (up{{{JOB}}})", "{{pod}} {{instance}}")]),
    row("Drops and evictions"),
    ts("Capture drops/s by stage", [(rate("mqscope_capture_dropped_total", by="stage"), "{{stage}}")],
       desc="kernel/interface: packets; snaplen, before_stream_start, out_of_window: segments; reassembly_limit: gaps; stream_gap, pending_overflow, oversized: MQTT packets."),
    ts("Evictions/s by table", [(rate("mqscope_evictions_total", by="table"), "{{table}}")], unit="ops",
       desc="Entries pushed out of a full bounded table: raise the cap if steady."),
    ts("Table fill", [
        (f"sum by (table) (mqscope_table_entries{{{S}}}) / sum by (table) (mqscope_table_capacity{{{S}}})", "{{table}}")],
       unit="percentunit"),
    ts("Events dropped/s", [(rate("mqscope_events_dropped_total", by="pod"), "{{pod}}")], unit="ops",
       desc="Events dropped because the event queue was full (still counted in mqscope_events_total)."),
    ts("Memory of the observation state", [(f"sum by (component) (mqscope_memory_bytes{{{S}}})", "{{component}}")], unit="bytes"),
    ts("Frames skipped/s by reason", [(rate("mqscope_capture_frames_skipped_total", by="reason"), "{{reason}}")], unit="pps"),
    row("Stream quality"),
    ts("TCP anomalies/s", [
        (rate("mqscope_tcp_gaps_total", by="pod"), "gaps {{pod}}"),
        (rate("mqscope_tcp_retransmitted_segments_total", by="pod"), "retransmitted {{pod}}"),
        (rate("mqscope_tcp_out_of_order_segments_total", by="pod"), "out of order {{pod}}"),
    ], unit="ops"),
    ts("Stream resyncs/s", [(rate("mqscope_stream_resyncs_total", by="pod"), "{{pod}}")], unit="ops"),
    ts("Capture throughput", [
        (rate("mqscope_capture_bytes_total", by="pod"), "captured {{pod}}"),
        (rate("mqscope_tcp_segments_total", by="pod"), "TCP segments/s {{pod}}"),
    ]),
]

DASHBOARDS = [
    ("mqscope-overview", "mqscope / Overview", OVERVIEW, True,
     "Broker health from $SYS, message and byte rates, clients and capture health."),
    ("mqscope-topics", "mqscope / Topics", TOPICS, True,
     "Per topic group: rates, payload sizes, latency heatmaps and fan-out."),
    ("mqscope-clients", "mqscope / Clients", CLIENTS, False, "Connections, clients and request latencies."),
    ("mqscope-security", "mqscope / Security", SECURITY, False,
     "Authentication failures, ACL denials, detection rule hits and firing alerts."),
    ("mqscope-health", "mqscope / Health", HEALTH, False, "mqscope's own health: scrapes, drops, evictions, tables."),
]


def variable(name, label, query, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
        "refresh": 2, "includeAll": True, "allValue": ".*", "multi": multi,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1, "hide": 0, "options": [], "regex": "",
    }


def templating(with_topic):
    v = [
        # A datasource variable named like the import input: on import Grafana replaces
        # ${DS_PROMETHEUS} with the chosen datasource; when provisioned from files
        # (docker-compose) the variable resolves it to the default Prometheus.
        {"name": "DS_PROMETHEUS", "label": "Data source", "type": "datasource", "query": "prometheus",
         "hide": 0, "refresh": 1, "regex": "", "current": {}, "options": []},
        variable("cluster", "Cluster", "label_values(mqscope_build_info, cluster)"),
        variable("pod", "Pod", 'label_values(mqscope_build_info{cluster=~"$cluster"}, pod)'),
    ]
    if with_topic:
        v.append(variable("topic", "Topic group",
                          'label_values(mqscope_topic_messages_total{cluster=~"$cluster", pod=~"$pod"}, topic)'))
    return {"list": v}


def panel_json(p, pid, x, y):
    if p["type"] == "row":
        return {"type": "row", "id": pid, "title": p["title"], "collapsed": False, "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
    targets = []
    for i, (expr, legend) in enumerate(p["targets"]):
        t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i), "range": True}
        if p["type"] == "heatmap":
            t["format"] = "heatmap"
        if p["type"] == "table":
            t.update({"format": "table", "instant": True, "range": False})
        targets.append(t)
    out = {
        "type": p["type"], "id": pid, "title": p["title"], "description": p["description"],
        "datasource": DS, "targets": targets,
        "gridPos": {"h": p["h"], "w": p["w"], "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
    }
    if p["type"] == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "stacking": {"mode": "normal" if p["stack"] else "none", "group": "A"}}
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                          "tooltip": {"mode": "multi", "sort": "desc"}}
    elif p["type"] == "stat":
        if p.get("no_value") is not None:
            out["fieldConfig"]["defaults"]["noValue"] = p["no_value"]
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    elif p["type"] == "heatmap":
        out["options"] = {"calculate": False, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Spectral", "steps": 64},
                          "yAxis": {"unit": p["unit"]}, "rowsFrame": {"layout": "auto"},
                          "tooltip": {"show": True, "yHistogram": True}, "legend": {"show": True}}
        if p.get("repeat"):
            out.update({"repeat": p["repeat"], "repeatDirection": "h", "maxPerRow": 4})
    elif p["type"] == "table":
        out["options"] = {"showHeader": True}
    return out


def dashboard(uid, title, panels, with_topic, desc):
    out, x, y, line_h, pid = [], 0, 0, 0, 1
    for p in panels:
        if p["type"] == "row":
            if x:
                y += line_h
            x, line_h = 0, 0
            out.append(panel_json(p, pid, 0, y))
            y += 1
        else:
            if x + p["w"] > 24:
                x, y, line_h = 0, y + line_h, 0
            out.append(panel_json(p, pid, x, y))
            x += p["w"]
            line_h = max(line_h, p["h"])
        pid += 1
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "Prometheus scraping mqscope",
                      "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
            {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""},
            {"type": "panel", "id": "table", "name": "Table", "version": ""},
        ],
        "uid": uid, "title": title, "description": desc, "tags": ["mqscope", "mqtt"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 38, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "",
        "links": [{"type": "dashboards", "tags": ["mqscope"], "asDropdown": True, "title": "mqscope"}],
        "annotations": {"list": []},
        "templating": templating(with_topic),
        "panels": out,
    }


def main():
    check = "--check" in sys.argv[1:]
    bad = []
    for uid, title, panels, with_topic, desc in DASHBOARDS:
        text = json.dumps(dashboard(uid, title, panels, with_topic, desc), indent=2, ensure_ascii=False) + "\n"
        path = os.path.join(HERE, uid + ".json")
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        bad.append(path)
            except FileNotFoundError:
                bad.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if bad:
        print("out of date (run python3 dashboards/generate.py):", *bad, sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
