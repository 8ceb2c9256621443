"""The example's assets: plain Dagster assets with no routing code at all.

``orders``, ``customers`` and ``revenue_by_customer`` are tables written by the warehouse's IO
manager (:class:`~dagster_branch.BranchTableIOManager`): ``analytics.<table>`` in production,
``analytics__pr_42.<table>`` in PR 42's branch deployment. ``orders_export`` writes a CSV file
through :class:`~dagster_branch.BranchS3Resource`: ``s3://<bucket>/exports/orders.csv`` in
production, ``s3://<bucket>/_branches/pr_42/exports/orders.csv`` in the branch.
"""

import csv
import io
import random
from datetime import date, timedelta
from typing import Any

import dagster as dg

Rows = list[dict[str, Any]]

ORDER_COUNT = 120
CUSTOMER_COUNT = 12
EXPORT_PATH = "exports/orders.csv"


@dg.asset(group_name="shop", kinds={"duckdb"}, description="Customers of the example shop.")
def customers() -> Rows:
    rng = random.Random(7)  # noqa: S311 (example data, not cryptography)
    regions = ["north", "south", "east", "west"]
    return [
        {"customer_id": i, "name": f"customer {i:02d}", "region": rng.choice(regions)}
        for i in range(1, CUSTOMER_COUNT + 1)
    ]


@dg.asset(group_name="shop", kinds={"duckdb"}, description="Orders placed in the example shop.")
def orders() -> Rows:
    rng = random.Random(42)  # noqa: S311
    start = date(2024, 1, 1)
    return [
        {
            "order_id": i,
            "customer_id": rng.randint(1, CUSTOMER_COUNT),
            "ordered_on": start + timedelta(days=rng.randint(0, 89)),
            "amount": round(rng.uniform(5, 250), 2),
        }
        for i in range(1, ORDER_COUNT + 1)
    ]


@dg.asset(group_name="shop", kinds={"duckdb"}, description="Revenue per customer and region.")
def revenue_by_customer(orders: Rows, customers: Rows) -> Rows:
    totals: dict[int, float] = {}
    for order in orders:
        totals[order["customer_id"]] = totals.get(order["customer_id"], 0.0) + order["amount"]
    return [
        {
            "customer_id": c["customer_id"],
            "region": c["region"],
            "revenue": round(totals.get(c["customer_id"], 0.0), 2),
        }
        for c in customers
    ]


def orders_export_asset() -> dg.AssetsDefinition:
    """The S3 asset; built on demand because it exists only when ``DATA_BUCKET`` is set."""

    @dg.asset(
        name="orders_export",
        group_name="shop",
        kinds={"s3"},
        description="Orders as a CSV file in the data lake, for downstream tools.",
        required_resource_keys={"lake"},
    )
    def orders_export(context: dg.AssetExecutionContext, orders: Rows) -> dg.MaterializeResult:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(orders[0]))
        writer.writeheader()
        writer.writerows(orders)
        lake = context.resources.lake  # a BranchS3Resource: keys are routed per deployment
        lake.get_client().put_object(
            Bucket=lake.bucket_name,
            Key=lake.key(EXPORT_PATH),
            Body=buffer.getvalue().encode(),
            ContentType="text/csv",
        )
        uri = dg.MetadataValue.path(lake.uri(EXPORT_PATH))
        return dg.MaterializeResult(metadata={"uri": uri, "rows": len(orders)})

    return orders_export
