"""The answer, published when a sweep's driver ends (`selab run`, `selab resume`): the
recommendation and the runs view go to the sweep's parent run in MLflow
(reports.publish.publish_answer), so a user who opens the MLflow UI after `selab run` sees it
without running `selab report` first. The sweep has ended either way: a failure here is one
line, never the command's exit code.
"""

from __future__ import annotations

from runners.storage.paths import shell_arg


def publish_after_run(
    tracking_uri: str, name: str, experiment_id: str, parent_run_id: str
) -> list[str]:
    """Publish the answer of the sweep whose parent run is ``parent_run_id``; returns the lines
    to print (the verdict, and where to see it)."""
    from mlflow import MlflowClient

    import reports
    from reports.decide import DEFAULT_MARGIN
    from reports.publish import publish_answer, run_url
    from reports.report import race_settings

    try:
        experiment = MlflowClient(tracking_uri).get_experiment(experiment_id).name
        sweep = reports.load_sweep(tracking_uri, name, experiment=experiment)
        if sweep.run_id != parent_run_id:  # a newer sweep of that name: not this driver's
            return []
        # The margin `selab report` uses by default: a raced sweep's own, else 1 point.
        race = race_settings(sweep.spec_text())
        rec = publish_answer(sweep, float(race["margin"]) / 100 if race else DEFAULT_MARGIN)
    except Exception as err:  # noqa: BLE001 - the sweep is done; say why, keep its exit code
        reason = (str(err).strip().splitlines() or [""])[0][:300]
        return [
            f"The answer was not published to MLflow ({type(err).__name__}: {reason}); "
            f"`selab report {name}` publishes it."
        ]
    if tracking_uri.startswith(("http://", "https://")):
        where = run_url(tracking_uri, experiment_id, parent_run_id)
    else:
        where = f"`selab ui --tracking-uri {shell_arg(tracking_uri)}` prints its page"
    verdict = (
        rec.text
        if rec is not None
        else "No recommendation yet: no SE configuration has a finished trial."
    )
    return [
        verdict,
        f"The answer is on the sweep's parent run in MLflow ({where}); "
        f"`selab report {name}` writes the full report.",
    ]
