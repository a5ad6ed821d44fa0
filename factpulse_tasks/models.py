"""The rows factpulse_tasks keeps: one per FactPulse task, and its files."""

from __future__ import annotations

import os
import secrets
from typing import Any

import django
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .kinds import kind_label, validate_kind_name
from .names import TASK_ID_MAX_LENGTH, safe_filename
from .querysets import FINISHED_STATES, UNFINISHED_STATES, FactPulseTaskQuerySet

# CheckConstraint's argument was renamed in Django 5.1 and the old name removed in 6.0.
CHECK_ARGUMENT = "condition" if django.VERSION >= (5, 1) else "check"


def check_constraint(name: str, condition: Q) -> models.CheckConstraint:
    """A CheckConstraint on any supported Django version."""
    return models.CheckConstraint(name=name, **{CHECK_ARGUMENT: condition})  # type: ignore[arg-type]


class ConfiguredStorage(Storage):
    """Forwards every call to ``storages[FACTPULSE_TASKS['STORAGE']]``, looked up each time.

    Django builds a field's storage once, when the model class is created; this
    indirection keeps the setting live (``override_settings`` works) and lets a
    bad value surface as a system check rather than as an import error.
    """

    def target(self) -> Storage:
        return storages[app_settings.STORAGE]

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        return self.target().open(name, mode)

    def _save(self, name: str, content: File[Any]) -> str:
        return self.target().save(name, content)

    def get_valid_name(self, name: str) -> str:
        return self.target().get_valid_name(name)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return self.target().get_available_name(name, max_length=max_length)

    def generate_filename(self, filename: str | os.PathLike[str]) -> str:
        return self.target().generate_filename(filename)

    def delete(self, name: str) -> None:
        self.target().delete(name)

    def exists(self, name: str) -> bool:
        return self.target().exists(name)

    def size(self, name: str) -> int:
        return self.target().size(name)

    def url(self, name: str | None) -> str:
        return self.target().url(name)

    def path(self, name: str) -> str:
        return self.target().path(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self.target().listdir(path)


# Longest stored file name, folders included (the FileField's column).
FILE_NAME_MAX_LENGTH = 255


def artifact_storage() -> Storage:
    """The storage of artifacts: the one named by ``FACTPULSE_TASKS['STORAGE']``."""
    return ConfiguredStorage()


def artifact_upload_to(instance: Artifact, filename: str) -> str:
    """``<prefix>/<kind>/<task id>/<role>-<random>-<safe name>``, whatever the API called it.

    The random part gives each attempt names of its own: on a storage that
    overwrites (S3 and GCS do by default), a worker that loses the race to finish
    a task deletes its own files, never the winner's.
    """
    task = instance.task
    return (
        f"{app_settings.UPLOAD_PREFIX}/{task.kind}/{task.task_id}/"
        f"{instance.role}-{secrets.token_hex(4)}-{safe_filename(filename)}"
    )


class FactPulseTask(models.Model):
    """A FactPulse asynchronous task followed until it has a final outcome."""

    class Kind(models.TextChoices):
        """The built-in kinds; hosts can register more (``kinds.register_kind``)."""

        GENERATION = "generation", _("Invoice generation")
        SIGNATURE = "signature", _("PDF signature")
        VALIDATION = "validation", _("Factur-X validation")
        STATUS = "status", _("Untyped task")
        CONVERSION = "conversion", _("Document conversion")
        VERIFICATION = "verification", _("PDF/XML verification")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        AWAITING_INPUT = "awaiting_input", _("Awaiting input")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    task_id = models.CharField(
        _("task id"),
        max_length=TASK_ID_MAX_LENGTH,
        unique=True,
        help_text=_("The id FactPulse returned when the task was submitted."),
    )
    # No fixed choices: a host project can register kinds of its own.
    kind = models.CharField(
        _("kind"),
        max_length=32,
        validators=[validate_kind_name],
        help_text=_("Which status endpoint is polled for this task (a registered kind)."),
    )
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=State.choices,
        default=State.PENDING,
        help_text=_("Where the task stands in this application."),
    )
    reference = models.CharField(
        _("reference"),
        max_length=255,
        blank=True,
        help_text=_("Free text from the host project, such as an invoice number."),
    )
    metadata = models.JSONField(
        _("metadata"),
        default=dict,
        blank=True,
        help_text=_("Free JSON data from the host project."),
    )
    remote_status = models.CharField(
        _("remote status"),
        max_length=32,
        blank=True,
        help_text=_("The Celery state FactPulse last reported (PENDING, STARTED, SUCCESS…)."),
    )
    result = models.JSONField(
        _("result"),
        null=True,
        blank=True,
        help_text=_("The decoded result, without the file contents (see the artifacts)."),
    )
    error_code = models.CharField(
        _("error code"),
        max_length=100,
        blank=True,
        help_text=_("AFNOR error code, or the app's own code when the task could not finish."),
    )
    error_message = models.TextField(
        _("error message"), blank=True, help_text=_("Why the task failed or expired.")
    )
    error_details = models.JSONField(
        _("error details"),
        default=list,
        blank=True,
        help_text=_("AFNOR details: a list of {level, item, reason, source, code}."),
    )
    last_error = models.TextField(
        _("last polling error"),
        blank=True,
        help_text=_("The last problem met while polling; cleared by the next good answer."),
    )
    error_count = models.PositiveIntegerField(
        _("consecutive polling errors"),
        default=0,
        help_text=_("Polls in a row that got no usable answer."),
    )
    poll_count = models.PositiveIntegerField(
        _("poll count"), default=0, help_text=_("Status requests made for this task.")
    )
    created_at = models.DateTimeField(
        _("created at"), auto_now_add=True, help_text=_("When the task was tracked.")
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    last_polled_at = models.DateTimeField(
        _("last polled at"), null=True, blank=True, help_text=_("When FactPulse was last asked.")
    )
    next_poll_at = models.DateTimeField(
        _("next poll at"),
        null=True,
        blank=True,
        help_text=_("When the task is next due; pushed forward while a worker holds it."),
    )
    finished_at = models.DateTimeField(
        _("finished at"),
        null=True,
        blank=True,
        help_text=_("When the task reached its final state."),
    )
    retried_at = models.DateTimeField(
        _("retried at"),
        null=True,
        blank=True,
        help_text=_("When an operator last put the task back to pending; the timeout counts "
                    "from then."),
    )
    notified_at = models.DateTimeField(
        _("notified at"),
        null=True,
        blank=True,
        help_text=_("When the finished signals were last sent."),
    )
    notification_error = models.TextField(
        _("notification error"),
        blank=True,
        help_text=_("What the receivers of the finished signals raised, if any; the admin "
                    "can send the signals again."),
    )

    objects = FactPulseTaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("FactPulse task")
        verbose_name_plural = _("FactPulse tasks")
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["state", "next_poll_at"],
                name="factpulse_task_due_idx",
                condition=Q(state__in=UNFINISHED_STATES),
            ),
            models.Index(
                fields=["finished_at"],
                name="factpulse_task_unnotified_idx",
                condition=Q(notified_at__isnull=True, finished_at__isnull=False),
            ),
            models.Index(fields=["created_at"], name="factpulse_task_created_idx"),
            models.Index(fields=["reference"], name="factpulse_task_reference_idx"),
        ]
        constraints = [
            check_constraint(
                "factpulse_task_state_valid", Q(state__in=UNFINISHED_STATES + FINISHED_STATES)
            ),
            check_constraint(
                "factpulse_task_unfinished_is_scheduled",
                Q(state__in=FINISHED_STATES) | Q(next_poll_at__isnull=False),
            ),
            check_constraint(
                "factpulse_task_finished_at_iff_final",
                Q(state__in=FINISHED_STATES, finished_at__isnull=False)
                | Q(state__in=UNFINISHED_STATES, finished_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind_label} {self.task_id}"

    @property
    def kind_label(self) -> str:
        """The label of the task's kind, as registered."""
        return kind_label(self.kind)


class Artifact(models.Model):
    """A file FactPulse returned for a task, kept in the configured storage."""

    class Role(models.TextChoices):
        DOCUMENT = "document", _("Document")
        XML = "xml", _("XML")

    task = models.ForeignKey(
        FactPulseTask,
        on_delete=models.CASCADE,
        related_name="artifacts",
        verbose_name=_("task"),
    )
    role = models.CharField(
        _("role"),
        max_length=16,
        choices=Role.choices,
        help_text=_("document: content_b64 (PDF or XML); xml: xml_content."),
    )
    file = models.FileField(
        _("file"), storage=artifact_storage, upload_to=artifact_upload_to,
        max_length=FILE_NAME_MAX_LENGTH,
    )
    filename = models.CharField(
        _("file name"), max_length=255, help_text=_("Name FactPulse gave, made safe.")
    )
    content_type = models.CharField(
        _("content type"), max_length=100, help_text=_("Media type, read from the bytes.")
    )
    size = models.PositiveBigIntegerField(_("size"), help_text=_("In bytes."))
    sha256 = models.CharField(
        _("SHA-256"), max_length=64, help_text=_("Hex digest of the stored bytes.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("artifact")
        verbose_name_plural = _("artifacts")
        ordering = ["task", "role"]
        constraints = [
            models.UniqueConstraint(fields=["task", "role"], name="factpulse_artifact_task_role")
        ]

    def __str__(self) -> str:
        return self.filename


@receiver(post_delete, sender=Artifact, dispatch_uid="factpulse_tasks_delete_artifact_file")
def delete_artifact_file(sender: type[Artifact], instance: Artifact, **kwargs: Any) -> None:
    """Remove the stored file once the deletion of its row is committed (cascades too)."""
    name = instance.file.name
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))
