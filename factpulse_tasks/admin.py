"""Django admin for FactPulse tasks: read-only, with the AFNOR error and the files."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .models import Artifact, FactPulseTask

# Longest JSON shown on a detail page, in characters, and most AFNOR detail rows.
JSON_DISPLAY_LIMIT = 100_000
DETAILS_DISPLAY_LIMIT = 1_001


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
    fields = ("role", "download", "content_type", "size", "sha256", "created_at")
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
        return format_html('<a href="{}">{}</a>', artifact_download_url(artifact), artifact)


@admin.register(FactPulseTask)
class FactPulseTaskAdmin(admin.ModelAdmin):
    list_display = (
        "task_id", "kind_display", "state", "reference", "remote_status", "poll_count",
        "created_at", "finished_at",
    )
    list_filter = ("kind", "state")
    search_fields = ("task_id", "reference")
    ordering = ("-created_at",)
    inlines = [ArtifactInline]
    fieldsets = (
        (None, {"fields": ("task_id", "kind", "state", "reference", "metadata_display")}),
        (_("FactPulse"), {"fields": ("remote_status", "result_display")}),
        (_("Error"), {"fields": ("error_code", "error_message", "error_details_display")}),
        (
            _("Polling"),
            {"fields": ("poll_count", "last_error", "error_count", "created_at",
                        "last_polled_at", "next_poll_at", "finished_at")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[FactPulseTask]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name and match.url_name.endswith("_changelist"):
            # The list shows none of the JSON columns, which can be megabytes per row.
            queryset = queryset.defer("result", "metadata", "error_details")
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("kind"), ordering="kind")
    def kind_display(self, task: FactPulseTask) -> str:
        # The column has no choices (hosts register kinds): the label comes from the registry.
        return task.kind_label

    @admin.display(description=_("result"))
    def result_display(self, task: FactPulseTask) -> SafeString:
        return _json_block(task.result)

    @admin.display(description=_("metadata"))
    def metadata_display(self, task: FactPulseTask) -> SafeString:
        return _json_block(task.metadata)

    @admin.display(description=_("error details"))
    def error_details_display(self, task: FactPulseTask) -> SafeString:
        rows = [d for d in task.error_details or [] if isinstance(d, dict)][:DETAILS_DISPLAY_LIMIT]
        if not rows:
            return format_html("{}", "-")
        columns = ("level", "item", "reason", "source", "code")
        head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((row.get(c) or "",) for c in columns)),)
             for row in rows),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
                           head, body)

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
        """Serve an artifact to a user allowed to view its task, as an attachment."""
        artifact = get_object_or_404(
            Artifact.objects.select_related("task"), pk=artifact_id, task__pk=task_pk
        )
        if not self.has_view_permission(request, artifact.task):
            raise PermissionDenied
        try:
            handle = artifact.file.open("rb")
        except (FileNotFoundError, OSError) as exc:
            raise Http404(f"The file of artifact {artifact.pk} is missing from storage.") from exc
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=artifact.filename,
            content_type=artifact.content_type,
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


def _json_block(value: Any) -> SafeString:
    if value in (None, {}, []):
        return format_html("{}", "-")
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > JSON_DISPLAY_LIMIT:
        more = len(text) - JSON_DISPLAY_LIMIT
        text = f"{text[:JSON_DISPLAY_LIMIT]}\n… ({more} more characters not shown)"
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)
