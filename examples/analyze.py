"""Demo cell: summarise a sales CSV with pandas and plot it with matplotlib.

Runs inside sandcell: the CSV arrives read-only as the input "sales", the
number of top products to report arrives as a JSON value, and the summary
CSV, the plot and a JSON result go back through the narrow interface.
"""
import os

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

import sandcell

top_n = int(sandcell.values.get("top", 3))
df = pd.read_csv(sandcell.inputs["sales"], parse_dates=["date"])
df["revenue"] = df["units"] * df["unit_price"]

by_region = df.groupby("region", as_index=False)["revenue"].sum().sort_values("revenue", ascending=False)
by_month = df.set_index("date").resample("MS")["revenue"].sum()
top_products = df.groupby("product")["revenue"].sum().nlargest(top_n)

os.makedirs(os.path.join(sandcell.output, "tables"), exist_ok=True)
by_region.to_csv(os.path.join(sandcell.output, "tables", "revenue_by_region.csv"), index=False)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.bar(by_region["region"], by_region["revenue"], color="#4c72b0")
ax1.set_title("Revenue by region")
ax2.plot(by_month.index.strftime("%b"), by_month.values, marker="o", color="#dd8452")
ax2.set_title("Revenue by month")
fig.tight_layout()
fig.savefig(os.path.join(sandcell.output, "revenue.png"), dpi=100)

print(by_region.to_string(index=False))
print(f"matplotlib backend: {matplotlib.get_backend()}")
sandcell.result({
    "rows": int(len(df)),
    "total_revenue": round(float(df["revenue"].sum()), 2),
    "top_products": {k: round(float(v), 2) for k, v in top_products.items()},
})
