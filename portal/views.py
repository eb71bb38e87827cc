"""Pages every app's self-service views share."""

from django.shortcuts import render


def no_record_page(request, title: str):
    """The page a login without an employee record gets on a self-service page (IT service accounts)."""
    return render(request, "portal/no_record.html", {"title": title})
