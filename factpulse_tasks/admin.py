"""Django admin for FactPulse tasks: read-only, with the AFNOR error, the files and actions.

The data comes from FactPulse, so nothing can be edited. The actions (poll
now, retry, send the finished signals again, mark expired) go through
:mod:`factpulse_tasks.transitions` like every other change of a task, and need
the ``change`` permission on tasks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import display, notifications, polling, tasks, transitions
from .display import DETAILS_DISPLAY_LIMIT, JSON_DISPLAY_LIMIT  # noqa: F401  (public names)
from .exceptions import PollInsideTransaction
from .kinds import REGISTRY
from .models import Artifact, FactPulseTask
from .querysets import UNFINISHED_STATES

# An unfinished task due for longer than this, in seconds, means nobody polls.
LATE_AFTER = 300
# Media types an artifact is served with; anything else goes out as bytes.
SERVED_TYPES = {"application/pdf", "application/xml"}
ERROR_SECTION = _("Error")


def artifact_download_url(artifact: Artifact) -> str:
    """The admin URL that serves ``artifact`` as a download."""
    return reverse(
        "admin:factpulse_tasks_factpulsetask_artifact_download",
        args=[artifact.task_id, artifact.pk],
    )


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    can_delete = False
    fields = ("role", "download", "content_type", "size_display", "sha256", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may see a task may see its files: the same rule as the download view.
        return request.user.has_perm("factpulse_tasks.view_factpulsetask") or (
            request.user.has_perm("factpulse_tasks.change_factpulsetask")
        )

    @admin.display(description=_("file"))
    def download(self, artifact: Artifact) -> SafeString:
        return format_html('<a href="{}" download>{}</a>', artifact_download_url(artifact),
                           artifact)

    @admin.display(description=_("size"))
    def size_display(self, artifact: Artifact) -> SafeString:
        return format_html('<span title="{}">{}</span>',
                           _("%(size)s bytes") % {"size": artifact.size},
                           filesizeformat(artifact.size))


class _ValueFilter(admin.SimpleListFilter):
    """Tasks whose ``parameter_name`` column equals the value picked."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class RemoteStatusFilter(_ValueFilter):
    """The Celery states FactPulse reports, listed without reading the table."""

    title = _("remote status")
    parameter_name = "remote_status"
    STATES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED")

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(state, state) for state in self.STATES]


class KindFilter(_ValueFilter):
    """The registered kinds, by their labels (the column has no fixed choices)."""

    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(name, spec.display_name) for name, spec in REGISTRY.items()]


class NotificationFilter(admin.SimpleListFilter):
    title = _("notification")
    parameter_name = "notification"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("failed", _("A receiver failed")),
            ("sent", _("Sent")),
            ("waiting", _("Not sent yet")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "failed":
            return queryset.exclude(notification_error="")
        if value == "sent":
            return queryset.filter(notified_at__isnull=False, notification_error="")
        if value == "waiting":
            return queryset.filter(notified_at__isnull=True)
        return queryset


@admin.register(FactPulseTask)
class FactPulseTaskAdmin(admin.ModelAdmin):
    list_display = (
        "task_id", "state_display", "kind_display", "reference", "remote_status", "age_display",
        "poll_count", "artifact_links", "created_at",
    )
    list_filter = ("state", KindFilter, RemoteStatusFilter, "created_at", NotificationFilter)
    search_fields = ("task_id", "reference", "error_code")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = [ArtifactInline]
    actions = ["poll_now", "retry_tasks", "resend_finished_signals", "mark_tasks_expired"]
    fieldsets = (
        (None, {"fields": ("task_id", "kind_display", "state_display", "reference",
                           "metadata_display")}),
        (_("FactPulse"), {"fields": ("remote_status", "result_display")}),
        (ERROR_SECTION, {"fields": ("error_code", "error_message", "error_details_display")}),
        (_("Notification"), {"fields": ("notified_at", "notification_error", "retried_at")}),
        (
            _("Polling"),
            {"fields": ("poll_count", "last_error", "error_count", "created_at",
                        "last_polled_at", "next_poll_at", "finished_at")},
        ),
        (_("Raw result"), {"fields": ("raw_result_display",), "classes": ("collapse",)}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not (obj.error_code or obj.error_message):
            # Nothing went wrong: fold the empty error section.
            fieldsets = [
                (name, {**options, "classes": ("collapse",)}) if name == ERROR_SECTION
                else (name, options)
                for name, options in fieldsets
            ]
        if obj is None or not display.has_layout(obj):
            # The result is already shown as JSON: no need for a raw copy.
            fieldsets = [(name, options) for name, options in fieldsets
                         if "raw_result_display" not in options["fields"]]
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[FactPulseTask]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name and match.url_name.endswith("_changelist"):
            # The list shows none of the JSON columns, which can be megabytes per row,
            # and all the artifacts of a page come in one query.
            queryset = queryset.defer("result", "metadata", "error_details").prefetch_related(
                "artifacts"
            )
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Who may run the actions: users with the ``change`` permission on tasks."""
        return request.user.has_perm("factpulse_tasks.change_factpulsetask")

    # The list ---------------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data is not None:
            response.context_data["factpulse_summary"] = self.summary()
        return response

    def summary(self) -> dict[str, Any]:
        """Counts per state, the oldest unfinished task and how many are overdue."""
        now = timezone.now()
        counts = FactPulseTask.objects.aggregate(
            late=Count("pk", filter=Q(state__in=UNFINISHED_STATES,
                                      next_poll_at__lt=now - timedelta(seconds=LATE_AFTER))),
            **{state: Count("pk", filter=Q(state=state)) for state in FactPulseTask.State.values},
        )
        oldest = (
            FactPulseTask.objects.unfinished()
            .order_by("created_at", "pk")
            .only("pk", "task_id", "kind", "created_at")
            .first()
        )
        return {
            "states": [
                {"value": state, "badge": display.state_badge(state), "count": counts[state]}
                for state in FactPulseTask.State.values
            ],
            "late": counts["late"],
            "oldest": oldest,
            "oldest_age": timesince(oldest.created_at, now, depth=1) if oldest else "",
        }

    @admin.display(description=_("state"), ordering="state")
    def state_display(self, task: FactPulseTask) -> SafeString:
        return display.state_badge(task.state)

    @admin.display(description=_("age / duration"), ordering="created_at")
    def age_display(self, task: FactPulseTask) -> str:
        return display.age_or_duration(task)

    @admin.display(description=_("files"))
    def artifact_links(self, task: FactPulseTask) -> SafeString:
        links = format_html_join(
            " · ",
            '<a href="{}" title="{} ({})" download>{}</a>',
            (
                (artifact_download_url(a), a.filename, filesizeformat(a.size),
                 a.get_role_display())
                for a in task.artifacts.all()
            ),
        )
        return links or format_html("{}", "-")

    # The detail page ----------------------------------------------------------

    @admin.display(description=_("kind"), ordering="kind")
    def kind_display(self, task: FactPulseTask) -> str:
        # The column has no choices (hosts register kinds): the label comes from the registry.
        return task.kind_label

    @admin.display(description=_("result"))
    def result_display(self, task: FactPulseTask) -> SafeString:
        return display.result_panel(task)

    @admin.display(description=_("raw result"))
    def raw_result_display(self, task: FactPulseTask) -> SafeString:
        return display.json_block(task.result)

    @admin.display(description=_("metadata"))
    def metadata_display(self, task: FactPulseTask) -> SafeString:
        return display.json_block(task.metadata)

    @admin.display(description=_("error details"))
    def error_details_display(self, task: FactPulseTask) -> SafeString:
        return display.afnor_table(task.error_details)

    # Actions ------------------------------------------------------------------

    @admin.action(description=_("Poll the selected tasks now"), permissions=["operate"])
    def poll_now(self, request: HttpRequest, queryset: QuerySet[FactPulseTask]) -> None:
        pks = list(queryset.filter(state__in=UNFINISHED_STATES).values_list("pk", flat=True))
        self._left_alone(request, queryset.count() - len(pks),
                         _("only unfinished tasks are polled"))
        if not pks:
            return
        transitions.make_due(pks)
        try:
            report = polling.poll_due(pks=pks, limit=len(pks))
        except PollInsideTransaction:
            # Inside ATOMIC_REQUESTS: a worker polls them instead, once this request commits.
            transaction.on_commit(tasks.request_poll, using=transitions.database())
            self.message_user(request, ngettext(
                "%(count)d task will be polled by the next polling cycle.",
                "%(count)d tasks will be polled by the next polling cycle.",
                len(pks)) % {"count": len(pks)}, messages.SUCCESS)
            return
        self.message_user(request, ngettext(
            "%(count)d task polled, %(finished)d finished.",
            "%(count)d tasks polled, %(finished)d finished.",
            report.polled) % {"count": report.polled, "finished": report.finished},
            messages.SUCCESS)
        unanswered = report.errors + report.refused
        if unanswered:
            self.message_user(request, ngettext(
                "%(count)d task got no usable answer; see its last polling error.",
                "%(count)d tasks got no usable answer; see their last polling error.",
                unanswered) % {"count": unanswered}, messages.WARNING)
        busy = len(pks) - report.claimed
        if busy:
            self.message_user(request, ngettext(
                "%(count)d task was being polled by a worker already.",
                "%(count)d tasks were being polled by a worker already.",
                busy) % {"count": busy}, messages.INFO)

    @admin.action(description=_("Retry the selected failed or expired tasks"),
                  permissions=["operate"])
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[FactPulseTask]) -> None:
        pks = list(queryset.values_list("pk", flat=True))
        count = transitions.retry(pks)
        if count:
            transaction.on_commit(tasks.request_poll, using=transitions.database())
            self.message_user(request, ngettext(
                "%(count)d task was put back to pending; its finished signals will be sent "
                "again for its new outcome.",
                "%(count)d tasks were put back to pending; their finished signals will be sent "
                "again for their new outcome.",
                count) % {"count": count}, messages.SUCCESS)
        self._left_alone(request, len(pks) - count,
                         _("only failed or expired tasks can be retried"))

    @admin.action(description=_("Send the finished signals of the selected tasks again"),
                  permissions=["operate"])
    def resend_finished_signals(
        self, request: HttpRequest, queryset: QuerySet[FactPulseTask]
    ) -> None:
        pks = list(queryset.values_list("pk", flat=True))
        sent, failed = notifications.resend_finished(pks)
        if sent - failed:
            self.message_user(request, ngettext(
                "The finished signals of %(count)d task were sent again.",
                "The finished signals of %(count)d tasks were sent again.",
                sent - failed) % {"count": sent - failed}, messages.SUCCESS)
        if failed:
            self.message_user(request, ngettext(
                "A receiver failed for %(count)d task; see its notification error.",
                "A receiver failed for %(count)d tasks; see their notification error.",
                failed) % {"count": failed}, messages.ERROR)
        self._left_alone(request, len(pks) - sent, _("only finished tasks have signals"))

    @admin.action(description=_("Mark the selected unfinished tasks expired"),
                  permissions=["operate"])
    def mark_tasks_expired(
        self, request: HttpRequest, queryset: QuerySet[FactPulseTask]
    ) -> None:
        pks = list(queryset.values_list("pk", flat=True))
        count = transitions.mark_expired(pks, why="marked expired in the admin")
        if count:
            self.message_user(request, ngettext(
                "%(count)d task was marked expired.",
                "%(count)d tasks were marked expired.",
                count) % {"count": count}, messages.SUCCESS)
        self._left_alone(request, len(pks) - count,
                         _("only unfinished tasks can be marked expired"))

    def _left_alone(self, request: HttpRequest, count: int, why: Any) -> None:
        if count > 0:
            self.message_user(request, ngettext(
                "%(count)d selected task was left alone: %(why)s.",
                "%(count)d selected tasks were left alone: %(why)s.",
                count) % {"count": count, "why": why}, messages.WARNING)

    # Downloads ----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        download = path(
            "<int:task_pk>/artifacts/<int:artifact_id>/download/",
            self.admin_site.admin_view(self.download_artifact),
            name="factpulse_tasks_factpulsetask_artifact_download",
        )
        return [download, *super().get_urls()]

    def download_artifact(
        self, request: HttpRequest, task_pk: int, artifact_id: int
    ) -> FileResponse:
        """Serve an artifact to a user allowed to view its task, as an attachment.

        The name in ``Content-Disposition`` is the stored safe name, quoted by
        Django (RFC 6266, with ``filename*`` for non-ASCII names). The response
        is never cached by shared caches and cannot run scripts if opened inline.
        """
        artifact = get_object_or_404(
            Artifact.objects.select_related("task"), pk=artifact_id, task__pk=task_pk
        )
        if not self.has_view_permission(request, artifact.task):
            raise PermissionDenied
        try:
            handle = artifact.file.open("rb")
        except (FileNotFoundError, OSError) as exc:
            raise Http404(f"The file of artifact {artifact.pk} is missing from storage.") from exc
        content_type = (
            artifact.content_type if artifact.content_type in SERVED_TYPES
            else "application/octet-stream"
        )
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=artifact.filename,
            content_type=content_type,
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "sandbox; default-src 'none'"
        response["Cache-Control"] = "private, no-store"
        return response
