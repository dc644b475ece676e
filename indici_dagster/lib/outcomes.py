"""CloudWatch outcome events from Dagster: the resource pinned to `INDICI_CLOUDWATCH_PREFIX`, and
the decorator that sends a step's committed audit rows when the step ends.

The prefix and region are pinned like every resource field (`lib/pinned.py`): a run's config
cannot send the events elsewhere. Sending never fails a step: a failure is one warning line
(group, count, AWS error code) and counts in the step's output metadata.
"""

import functools
from collections.abc import Callable
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult

from indici_dagster.core.outcomes.delivery import Delivery
from indici_dagster.core.outcomes.send import audit_mark, send_committed, send_entries
from indici_dagster.core.settings import CLOUDWATCH_PREFIX, Settings
from indici_dagster.core.warehouse.audit import AuditEntry, Step
from indici_dagster.lib.pinned import Pin, PinnedResource

EVENTS_SENT = "indici/cloudwatch_events_sent"
DELIVERY_FAILURES = "indici/cloudwatch_delivery_failures"


class OutcomeLogResource(PinnedResource):
    """Where audit rows go besides the audit log: CloudWatch groups under `prefix` (None: off)."""

    prefix: str | None = None
    region: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether audit rows are sent to CloudWatch at all."""
        return self.prefix is not None

    def send_entries(self, entries: list[AuditEntry], stream: str) -> Delivery:
        """Send audit rows the caller has committed (nothing when off)."""
        if self.prefix is None or not entries:
            return Delivery()
        return send_entries(self.prefix, self.region, entries, stream)


def outcomes_pin(settings: Settings) -> Pin:
    """The outcome resource as `settings` configure it."""
    variables = (
        {"prefix": CLOUDWATCH_PREFIX} if CLOUDWATCH_PREFIX in settings.from_environment else {}
    )
    return Pin(
        OutcomeLogResource,
        {"prefix": settings.cloudwatch_prefix, "region": settings.aws_region},
        variables,
    )


def delivery_metadata(delivery: Delivery) -> dict[str, int]:
    """The counts a step shows in its output metadata."""
    return {EVENTS_SENT: delivery.sent, DELIVERY_FAILURES: delivery.failed}


def log_delivery(log: Any, delivery: Delivery) -> None:
    """One warning line per failed batch (no values), to `log` (a Dagster log manager)."""
    for problem in delivery.problems:
        log.warning(problem)


def with_metadata(result: MaterializeResult, metadata: dict[str, int]) -> MaterializeResult:
    """`result` with `metadata` added to its own."""
    return MaterializeResult(
        asset_key=result.asset_key,
        metadata={**(result.metadata or {}), **metadata},
        check_results=result.check_results,
        data_version=result.data_version,
        tags=result.tags,
        value=result.value,
    )


def sends_outcomes(*steps: Step, dataset: str | None = None) -> Callable:
    """Decorate an asset function taking `warehouse` and `outcomes` resources: when the step
    ends, successfully or not, send the audit rows it committed for `steps` (of `dataset`) to
    CloudWatch, and show the counts in its output metadata (or, when it failed, in its log).

    The rows are those of this run above the newest id when the step began: no other step of
    the run writes rows of the same steps and dataset meanwhile (one asset per dataset and
    layer, and staging starts only after partitioned ended)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(context: AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
            outcomes: OutcomeLogResource = kwargs["outcomes"]
            if outcomes.prefix is None:
                return fn(context, *args, **kwargs)
            warehouse = kwargs["warehouse"].get_warehouse()
            mark = audit_mark(warehouse)

            def send() -> Delivery:
                delivery = send_committed(
                    warehouse,
                    outcomes.prefix,
                    outcomes.region,
                    after=mark,
                    run_id=context.run_id,
                    steps=steps,
                    dataset=dataset,
                )
                log_delivery(context.log, delivery)
                return delivery

            try:
                result = fn(context, *args, **kwargs)
            except BaseException:
                delivery = send()
                context.log.info(
                    f"CloudWatch outcome events: {delivery.sent} sent, {delivery.failed} not "
                    "delivered"
                )
                raise
            return with_metadata(result, delivery_metadata(send()))

        return wrapper

    return decorate
