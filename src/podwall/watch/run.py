"""Wire the real adapters into the Watcher and run it until SIGTERM."""

from __future__ import annotations

from pathlib import Path

from podwall import enforce, proc
from podwall.policy.load import LoadedPolicy, load_policy
from podwall.watch import live
from podwall.watch.daemon import Adapters, Options, Watcher
from podwall.watch.logs import DecisionLog
from podwall.watch.metrics import Metrics
from podwall.watch.notify import sd_notify
from podwall.watch.sources import DEFAULT_EVENTS_FILE


def event_logger(podman: str = "podman") -> str:
    cp = proc.run([podman, "info", "--format", "{{.Host.EventLogger}}"], check=False)
    return cp.stdout.strip() if cp.returncode == 0 else ""


def run_daemon(
    loaded: LoadedPolicy,
    *,
    policy_file: str,
    listen: tuple[str, int] | None,
    resync_seconds: float,
    log_format: str,
    force: bool,
    events_file: Path | None,
) -> None:
    from podwall.podman.networks import is_rootless

    log = DecisionLog(log_format)
    metrics = Metrics()
    if events_file is None and event_logger() == "file":
        events_file = DEFAULT_EVENTS_FILE
    env = enforce.live_environment()
    holder: list[Watcher] = []

    def names_by_id() -> dict[str, str]:
        st = holder[0].state if holder else None
        return {} if st is None else {c.id: c.name for c in st.containers.values() if c.id}

    inspector = live.Inspector(rootless=is_rootless(), names_by_id=names_by_id)
    adapters = Adapters(
        env=env,
        inspect=inspector,
        learn_pods=inspector.learn_pods,
        pod_event=inspector.pod_event,
        revoke_touched=live.revoke_touched,
        netavark_fingerprint=live.netavark_fingerprint,
        load_policy=load_policy,
        notify=sd_notify,
    )
    w = Watcher(
        Options(policy_file=policy_file, resync_seconds=resync_seconds, force=force, events_file=events_file),
        loaded,
        adapters,
        log,
        metrics,
    )
    holder.append(w)
    w.install_signals()
    metrics.attach(
        lambda: w.state,
        env.nft.element_counters,
        lambda: [enforce.describe_flow(w.loaded, i) for i in range(len(w.loaded.policy.flows))],
    )
    try:
        w.start()
        if listen is not None:
            port = metrics.serve(*listen)
            log("metrics", listen=f"{listen[0]}:{port}")
        log(
            "watching",
            events_file=str(events_file) if events_file else "none (podman events only)",
            resync_seconds=resync_seconds,
        )
        w.run()
    finally:
        w.shutdown()
        metrics.close()
