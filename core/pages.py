"""The page-view ladder, written once: bind a form, call a service, show its refusal.

Every page that changes something does the same four steps: validate the posted form (400 with
the form's field errors when it does not validate), call a service, turn the service's
`ApplicationError` into an error on the field it names (or an alert for the whole section) with
the error's status code, and answer with the success response. `page_action` does them; a view
says only what is particular to it: the form, the service call, what the page shows after a
refusal and what it answers on success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django import forms
from django.http import HttpRequest, HttpResponse

from core.errors import ApplicationError
from core.htmx import render_page

Result = TypeVar("Result")

INVALID_FORM_STATUS = 400


@dataclass(frozen=True)
class Refusal:
    """Why a page action did not happen, and the status to answer with.

    `error` is the service's refusal, None when the form did not validate. `message` is the
    alert to show for the whole section: empty when the form's fields carry the errors (the
    form did not validate, or the service named one of its fields)."""

    status: int
    error: ApplicationError | None = None
    is_on_field: bool = False

    @property
    def is_alert(self) -> bool:
        """Whether the page shows this refusal as its alert (a service's, not on a field)."""
        return self.error is not None and not self.is_on_field

    @property
    def message(self) -> str:
        return self.error.message if self.error is not None and self.is_alert else ""


def refusal_of(error: ApplicationError, *, form: forms.Form | None = None) -> Refusal:
    """The refusal of `error`: on the form's field it names if there is one, else as an alert."""
    if form is not None and error.param and error.param in form.fields:
        form.add_error(error.param, error.message)
        return Refusal(status=error.status_code, error=error, is_on_field=True)
    return Refusal(status=error.status_code, error=error)


def page_action(
    request: HttpRequest,
    action: Callable[[], Result],
    *,
    success: Callable[[Result], HttpResponse],
    context: Callable[[Refusal], dict[str, Any]],
    page: str,
    partial: str | None = None,
    form: forms.Form | None = None,
    errors_on_fields: bool = True,
    propagate: tuple[type[ApplicationError], ...] = (),
) -> HttpResponse:
    """Validate `form` (if any), run `action` and answer `success(result)`; on a refusal render
    `partial` for an htmx request or `page` otherwise, with `context(refusal)`, at its status.

    `action` reads the form's cleaned data itself (it runs only after the form validated).
    `errors_on_fields=False` keeps every service refusal as the section's alert, for pages
    whose form has no place for it. Errors in `propagate` (e.g. NotFound: another team's
    object) are not refusals to show: they go up to the 404 handler."""
    if form is not None and not form.is_valid():
        refusal = Refusal(status=INVALID_FORM_STATUS)
    else:
        try:
            result = action()
        except propagate:
            raise
        except ApplicationError as error:
            refusal = refusal_of(error, form=form if errors_on_fields else None)
        else:
            return success(result)
    return render_page(request, page=page, partial=partial or page, context=context(refusal), status=refusal.status)
