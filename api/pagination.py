from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """``?page=2&page_size=100``; 50 a page by default, 200 at most. A ``page_size`` that is not a whole
    number of at least 1 is refused (400) rather than quietly replaced by the default."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and (not raw.isdigit() or int(raw) < 1 or len(raw) > 6):
            raise ValidationError(
                {self.page_size_query_param: ["A whole number from 1 (at most 200 are given)."]}
            )
        return super().get_page_size(request)

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and raw != "last" and (not raw.isdigit() or len(raw) > 9):
            raise ValidationError({self.page_query_param: ["A page number: a whole number from 1."]})
        return super().get_page_number(request, paginator)
