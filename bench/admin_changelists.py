"""Admin changelists at two company sizes: the same number of queries, and page time that barely grows.

For Employee, HardwareAsset and Entitlement: the first page, a search and a filter, as a logged-in
IT admin. Goals (checked by `report`): the number of queries is the same at every size, and the
median page time at the largest size is within 1.5x of the smallest. When a goal is missed, the
report names the slowest queries at the largest size with the database's plan for them, which is
where to look (a COUNT(*) over the table, a LIKE '%term%' scan, a filter sidebar listing a whole
table, an ordering without an index).

Every page must render the rows the database holds for it (min(page size, COUNT(*) of the
changelist's own filtered queryset)), and at least one: otherwise the benchmark stops with
`RowCountError` instead of timing an empty page.
"""

from bench.registry import Bench, Context, assert_rows, changelist_expected_rows, explain, measure_get, register

QUERY_GOAL = "same number of queries at every size"
TIME_GOAL_RATIO = 1.5

PAGES = {
    "employee": (
        "/admin/accounts/employee/",
        {
            "first page": "",
            "search": "?q=s0000042",  # one person, by email / number
            "search surname": "?q=Garcia",  # a common surname: matches grow with the company
            "search first name": "?q=anna",  # typed in lower case; names are stored capitalised
            # Each of the 30 x 30 name pairs once per 900 people in seed_scale: 1 match at 1k, ~111 at 100k.
            "search full name": "?q=Anna+Garcia",
            "filter": "?status__exact=terminated",
        },
    ),
    "hardwareasset": (
        "/admin/assets/hardwareasset/",
        {"first page": "", "search": "?q=S-0000042", "filter": "?status__exact=assigned"},
    ),
    "entitlement": (
        "/admin/accounts/entitlement/",
        {"first page": "", "search": "?q=s0000042", "filter": "?status__exact=revoked"},
    ),
}


@register
class AdminChangelists(Bench):
    name = "admin_changelists"

    def run(self, ctx: Context) -> dict:
        client = ctx.client("it_admin")
        pages = {}
        for page, (url, variants) in PAGES.items():
            for variant, query in variants.items():
                result = measure_get(client, url + query, repeat=ctx.repeat)
                # The rows shown (one selection checkbox each) must be the rows the database holds
                # for this page: an empty or half-rendered page would make the timing meaningless.
                result["rows_expected"] = changelist_expected_rows(ctx.user("it_admin"), url + query)
                assert_rows(f"{page} · {variant} ({url + query})", result["rows"], result["rows_expected"])
                # Plans for the slowest queries, for the report's diagnosis.
                for q in result["slowest_queries"][:2]:
                    q["plan"] = explain(q["sql"])
                pages[f"{page} · {variant}"] = result
        return {"pages": pages}

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        sizes = sorted(by_size)
        small, large = sizes[0], sizes[-1]
        pages_out, lines = {}, []
        header = f"{'page':<32}" + "".join(f"{'q@' + str(s):>9}" for s in sizes)
        header += "".join(f"{'ms@' + str(s):>11}" for s in sizes) + f"{'ratio':>7}{'cpu':>6}"
        header += f"{'rows':>9}{'db ms':>13}  goals"
        lines += [header, "-" * len(header)]
        all_met = True
        for key in by_size[small]["pages"]:
            per_size = {s: by_size[s]["pages"][key] for s in sizes}
            queries = {s: per_size[s]["queries"] for s in sizes}
            medians = {s: per_size[s]["median_ms"] for s in sizes}
            ratio = round(medians[large] / medians[small], 2) if medians[small] else None
            cpu = {s: per_size[s].get("median_cpu_ms") for s in sizes}
            cpu_ratio = round(cpu[large] / cpu[small], 2) if cpu[small] else None
            rows = {s: per_size[s]["rows"] for s in sizes}
            db_ms = {s: per_size[s].get("db_ms") for s in sizes}
            ok_status = all(per_size[s]["status"] == 200 for s in sizes)
            queries_met = ok_status and len(set(queries.values())) == 1
            time_met = ok_status and ratio is not None and ratio <= TIME_GOAL_RATIO
            all_met &= queries_met and time_met
            pages_out[key] = {
                "url": per_size[small]["url"],
                "status": {s: per_size[s]["status"] for s in sizes},
                "rows_on_page": rows,
                "rows_expected": {s: per_size[s].get("rows_expected") for s in sizes},
                "db_ms": db_ms,
                "queries": queries,
                "median_ms": medians,
                "p95_ms": {s: per_size[s]["p95_ms"] for s in sizes},
                "samples_ms": {s: per_size[s]["samples_ms"] for s in sizes},
                "ratio_large_small": ratio,
                "median_cpu_ms": cpu,
                "cpu_ratio_large_small": cpu_ratio,
                "goal_same_queries": queries_met,
                "goal_time_ratio": time_met,
                "slowest_queries_at_largest": per_size[large]["slowest_queries"],
                "slowest_queries_at_smallest": per_size[small]["slowest_queries"],
            }
            marks = ("queries ok" if queries_met else "QUERIES DIFFER") + ", " + ("time ok" if time_met else "TOO SLOW")
            if not ok_status:
                marks = f"HTTP {sorted(set(pages_out[key]['status'].values()))}"
            lines.append(
                f"{key:<32}"
                + "".join(f"{queries[s]:>9}" for s in sizes)
                + "".join(f"{medians[s]:>11.1f}" for s in sizes)
                + f"{ratio if ratio is not None else '-':>7}{cpu_ratio if cpu_ratio is not None else '-':>6}"
                + f"{rows[small]:>4}→{rows[large]:<4}"
                + (f"{db_ms[small]:>6.1f}→{db_ms[large]:<6.1f}" if None not in db_ms.values() else f"{'-':>13}")
                + f"  {marks}"
            )
        lines.append("")
        lines.append(
            f"Goals: {QUERY_GOAL}; median page time at {large} within {TIME_GOAL_RATIO}x of {small} (ratio). "
            "cpu: the same ratio for this process's CPU time, steadier on a busy machine. rows: rows on the "
            "page at the smallest → largest size (more rows take longer to render). db ms: the page's queries "
            "alone, re-run and summed."
        )
        for key, page in pages_out.items():
            if page["goal_same_queries"] and page["goal_time_ratio"]:
                continue
            top = page["slowest_queries_at_largest"][:1]
            for q in top:
                lines.append(f"  {key}: slowest query at {large}: {q['ms']} ms: {q['sql'][:160]}")
                for step in q.get("plan", [])[:4]:
                    lines.append(f"      plan: {step}")
        doc = {
            "benchmark": self.name,
            "sizes": sizes,
            "goals": {"queries": QUERY_GOAL, "time_ratio_max": TIME_GOAL_RATIO},
            "all_goals_met": all_met,
            "pages": pages_out,
        }
        return doc, "\n".join(lines)
