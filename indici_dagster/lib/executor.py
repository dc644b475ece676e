"""How a run executes its steps: in one process, or several datasets at once."""

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from indici_dagster.core.settings import Settings


def build_executor(settings: Settings) -> ExecutorDefinition:
    """In-process by default: the steps are short and database-bound, and a process per step
    would cost more than it saves. With `max_concurrent` above 1, steps run in that many
    processes forked from a server that has already imported the project, so several datasets
    of a date load at once; one table's load and upsert are still serialised by its lock."""
    if settings.max_concurrent <= 1:
        return in_process_executor
    return multiprocess_executor.configured(
        {
            "max_concurrent": settings.max_concurrent,
            "start_method": {"forkserver": {"preload_modules": ["indici_dagster.definitions"]}},
        }
    )
