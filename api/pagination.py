"""Page-number pagination: two queries a page (the count, the rows), a clear 400 for a page that is not there."""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_PAGE_NUMBER = 10**9


class PortalPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"Give a whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        raw = request.query_params.get(self.page_query_param, "1")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_NUMBER:
            raise ValidationError({"page": ["Give a page number: a whole number from 1."]})
        paginator = self.django_paginator_class(queryset, self.get_page_size(request))
        number = int(raw)
        if number > paginator.num_pages:
            raise ValidationError({"page": [f"There is no page {number}; the last page is {paginator.num_pages}."]})
        self.page = paginator.page(number)
        self.request = request
        return list(self.page)
