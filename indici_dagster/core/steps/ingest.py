"""The pipeline's steps as plain functions: describe landed files, copy them, load them.

Dagster assets call these; they can equally be called from a script or a test.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from indici_dagster.core.db_errors import (
    NOT_RETRIED,
    ErrorKind,
    FileLoadError,
    classify,
    describe_library_error,
)
from indici_dagster.core.errors import (
    archived_code,
    archived_message,
    describe_storage_error,
    is_permanent_storage_error,
    storage_error_code,
)
from indici_dagster.core.escaping import escape_text
from indici_dagster.core.filenames import LandedFileName, parse_file_name, try_parse_file_name
from indici_dagster.core.landing.run_objects import (
    OBJECTS_TAG,
    ObjectsTagError,
    decode_objects_tags,
)
from indici_dagster.core.landing.scan import file_of_dates, objects_of_dates
from indici_dagster.core.parquet.reader import (
    ParquetSummary,
    UnreadableParquetError,
    open_parquet,
    summarize,
)
from indici_dagster.core.rules.model import Rule
from indici_dagster.core.storage.base import ChangedWhileReadingError, Storage, StoredObject
from indici_dagster.core.warehouse.audit import AuditEntry, Status, Step
from indici_dagster.core.warehouse.facade import Warehouse
from indici_dagster.core.warehouse.staging_load import StagingResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandedFile:
    """A landed object whose name parsed: where it is and what its name says."""

    object: StoredObject
    name: LandedFileName

    @property
    def partitioned_key(self) -> str:
        """Its key in the date-partitioned copy: `dataset=<D>/date=<YYYY-MM-DD>/<file name>`."""
        return partitioned_key(self.name.dataset, self.name.partition_key, self.name.file_name)


@dataclass(frozen=True)
class RawFileReport:
    """What reading a landed file's footer found."""

    file: LandedFile
    summary: ParquetSummary | None
    error: str | None = None

    @property
    def rows(self) -> int:
        """Rows in the footer (0 if unreadable)."""
        return self.summary.rows if self.summary else 0


def partitioned_key(dataset: str, partition_key: str, file_name: str) -> str:
    """The partitioned-copy key for a file; every part has been validated by the name parser."""
    return f"dataset={dataset}/date={partition_key}/{file_name}"


def landed_files_for(
    storage: Storage,
    partition_keys: Iterable[str],
    timezone: str,
    run_tags: Mapping[str, str] | None = None,
) -> list[LandedFile]:
    """Every landed object whose name parses and whose date is one of `partition_keys`.

    A run of one date whose `run_tags` carry the versions the sensor requested it for
    (`run_objects`) reads exactly those, with no storage request; any other run lists per date,
    not the whole location (entries that can never be read are the sensor's to audit). Versions
    named in tags pass the listing's own checks (`file_of_dates`): one that fails them raises
    `ObjectsTagError` naming its escaped key, before anything is read. Reads and copies check
    each version's ETag, so a version replaced since is never taken for it.
    """
    wanted = set(partition_keys)
    requested = decode_objects_tags(run_tags or {})
    from_tags = requested is not None and wanted == {requested.partition_key}
    candidates = requested.objects if from_tags else objects_of_dates(storage, wanted)
    files = []
    for obj in candidates:
        name = file_of_dates(storage, obj, wanted, timezone)
        if isinstance(name, LandedFileName):
            files.append(LandedFile(obj, name))
        elif from_tags:  # the listing would never have handed it over: a forged or damaged tag
            raise ObjectsTagError(
                f"run tags {OBJECTS_TAG}.* name {escape_text(obj.key)}, which is refused: {name}; "
                "the run reads none of its files"
            )
    return sorted(files, key=lambda f: (f.name.source_ts, f.name.file_name, f.object.key))


def describe_landed_file(storage: Storage, file: LandedFile) -> RawFileReport:
    """Read one file's Parquet footer; an unreadable file, or one no longer the version
    listed or requested, is reported, never raised."""
    try:
        with storage.open_for_read(file.object.key, etag=file.object.etag) as handle:
            return RawFileReport(file, summarize(open_parquet(handle)))
    except UnreadableParquetError as error:
        return RawFileReport(file, None, str(error))
    except (ChangedWhileReadingError, FileNotFoundError):
        return RawFileReport(file, None, CHANGED)
    except Exception as error:
        if (code := archived_code(error)) is None:
            raise
        message = archived_message(code, file.name.dataset, file.name.partition_key)
        return RawFileReport(file, None, message)


CHANGED = (
    "replaced or removed since it was listed or requested (its ETag no longer matches): "
    "not read as this version; a new version is new work for the sensor"
)
_CHANGED_CODES = frozenset({"PreconditionFailed", "412", "NoSuchKey", "404"})


def copy_to_partitioned(
    landing: Storage,
    partitioned: Storage,
    files: Iterable[LandedFile],
    rules: Mapping[str, Rule],
    *,
    run_id: str,
) -> "CopyReport":
    """Copy each file byte for byte to its date-partitioned key; report what happened.

    A copy already holding exactly this content is not copied again. Files of a dataset with no
    rule are copied and get a `no_rule` staging audit row. A failed copy does not stop the others.
    Two objects with one file name (in different folders) are both refused, never overwritten.
    """
    report = CopyReport()
    files = list(files)
    keys_by_target: dict[str, list[str]] = defaultdict(list)
    for file in files:
        keys_by_target[file.partitioned_key].append(file.object.key)
    for file in files:
        base = dict(
            source_file=file.name.file_name,
            dataset=file.name.dataset,
            partition_key=file.name.partition_key,
            run_id=run_id,
            source_key=file.object.key,
            source_etag=file.object.etag,
        )
        clashing = [k for k in keys_by_target[file.partitioned_key] if k != file.object.key]
        if clashing:
            # one name, two objects: copying both would let one silently replace the other
            message = (
                f"the same file name also landed as {', '.join(sorted(clashing))}; not copied: "
                "remove or rename one"
            )
            report.entries.append(
                AuditEntry(Step.PARTITIONED, Status.ERROR, message=message, **base)
            )
            report.clashes.append(file.object.key)
            continue
        try:
            copied = landing.copy_object(file.object, partitioned, file.partitioned_key)
        except Exception as error:
            if is_permanent_storage_error(error):
                raise  # access denied, no such bucket: no retry can fix it; fail the step now
            target = partitioned.display(file.partitioned_key)
            if (code := archived_code(error)) is not None:
                # no retry reads it before a restore: this file fails alone, the rest go on
                message = archived_message(code, file.name.dataset, file.name.partition_key)
                report.entries.append(
                    AuditEntry(Step.PARTITIONED, Status.ERROR, message=message, **base)
                )
                report.archived.append(file.object.key)
                continue
            if (
                isinstance(error, (ChangedWhileReadingError, FileNotFoundError))
                or storage_error_code(error) in _CHANGED_CODES
            ):
                message = f"not copied to {target}: {CHANGED}"
            else:
                message = f"copy to {target} failed: {describe_storage_error(error)}"
            report.entries.append(
                AuditEntry(Step.PARTITIONED, Status.ERROR, message=message, **base)
            )
            report.failed.append(f"{file.name.file_name}: {message}")
            continue
        report.copied += int(copied)
        note = "copied" if copied else "identical copy already present"
        report.entries.append(AuditEntry(Step.PARTITIONED, Status.SUCCESS, message=note, **base))
        if file.name.dataset not in rules:
            report.entries.append(
                AuditEntry(
                    Step.PARTITIONED,
                    Status.NO_RULE,
                    message=f"no rule for dataset {file.name.dataset}; waiting for one",
                    **base,
                )
            )
    return report


@dataclass
class CopyReport:
    """What `copy_to_partitioned` did: audit rows, copies made, and files it could not copy."""

    entries: list[AuditEntry] = field(default_factory=list)
    copied: int = 0
    failed: list[str] = field(default_factory=list)
    """Copies that failed (storage errors: a retry may succeed)."""
    clashes: list[str] = field(default_factory=list)
    """Keys refused because another object has the same name (a person must resolve it)."""
    archived: list[str] = field(default_factory=list)
    """Keys not copied because they are archived (`indici restore`, then replay the date)."""


@dataclass(frozen=True)
class FileOutcome:
    """One file's staging outcome: a result, or the error that stopped it."""

    file_name: str
    partition_key: str
    result: StagingResult | None
    error: str | None = None


def load_partitions_into_staging(
    partitioned: Storage,
    warehouse: Warehouse,
    rule: Rule,
    partition_keys: Iterable[str],
    *,
    run_id: str,
) -> list[FileOutcome]:
    """Load every file of `rule`'s dataset copied for these dates into staging, file by file.

    Each file is its own transaction; a file that fails on its content is audited as `error`
    and the rest still load. An infrastructure failure (`ErrorKind.TRANSIENT`) or a refusal
    (`ErrorKind.PERMANENT`) is audited for the file it interrupted, saying whether the step will
    be retried, and raised unchanged. Files are read from the date-partitioned copy.
    """
    outcomes: list[FileOutcome] = []
    with warehouse.reusing_connections():
        for partition_key in sorted(set(partition_keys)):
            prefix = f"dataset={rule.dataset}/date={partition_key}/"
            for obj in partitioned.list_objects(prefix):
                name = try_parse_file_name(obj.key, warehouse.timezone)
                if name is None or (name.dataset, name.partition_key) != (
                    rule.dataset,
                    partition_key,
                ):
                    continue
                outcomes.append(_load_one(partitioned, warehouse, rule, obj, name, run_id))
    return outcomes


def _load_one(
    storage: Storage,
    warehouse: Warehouse,
    rule: Rule,
    obj: StoredObject,
    name: LandedFileName,
    run_id: str,
) -> FileOutcome:
    audit = AuditEntry(
        Step.STAGING,
        Status.ERROR,
        name.file_name,
        rule.dataset,
        name.partition_key,
        run_id,
        source_key=storage.display(obj.key),
        source_etag=obj.etag,
    )
    try:
        with storage.open_for_read(obj.key, etag=obj.etag) as handle:
            try:
                parquet_file = open_parquet(handle)
            except UnreadableParquetError as error:
                message = f"{error} (this file failed: {NOT_RETRIED})"
                warehouse.write_audit([replace(audit, rows_loaded=0, message=message)])
                return FileOutcome(name.file_name, name.partition_key, None, message)
            result = warehouse.load_file_into_staging(
                rule,
                name,
                parquet_file,
                run_id=run_id,
                source_key=storage.display(obj.key),
                source_etag=obj.etag,
            )
    except FileLoadError as error:
        message = str(error).removeprefix(f"{name.file_name}: ")
        return FileOutcome(name.file_name, name.partition_key, None, message)
    except Exception as error:
        if (code := archived_code(error)) is not None:  # the copy itself was archived
            message = archived_message(code, rule.dataset, name.partition_key)
            warehouse.write_audit([replace(audit, rows_loaded=0, message=message)])
            return FileOutcome(name.file_name, name.partition_key, None, message)
        # nothing of the file is committed; the message is rebuilt from names only
        kind, description = classify(error), describe_library_error(error)
        if kind is ErrorKind.CONTENT:  # its content, found outside the load transaction
            message = f"{description} (this file failed: {NOT_RETRIED})"
            warehouse.write_audit([replace(audit, rows_loaded=0, message=message)])
            return FileOutcome(name.file_name, name.partition_key, None, message)
        if kind is ErrorKind.TRANSIENT:
            message = f"load interrupted, will be retried (infrastructure failure): {description}"
        else:
            message = (
                "load refused, not retried (not the file's content: configuration, permissions "
                f"or a fault of the pipeline): {description}"
            )
        # record the attempt if the database still answers; the step's retry policy decides
        try:
            warehouse.write_audit([replace(audit, rows_loaded=0, message=message)])
        except Exception:  # the database itself is what failed
            log.warning("%s: %s; its audit row was not written", name.file_name, message)
        raise
    return FileOutcome(name.file_name, name.partition_key, result)


def partition_key_of_file(file_name: str, timezone: str) -> str:
    """The partition key of a file name the pipeline has already accepted."""
    return parse_file_name(file_name, timezone).partition_key
