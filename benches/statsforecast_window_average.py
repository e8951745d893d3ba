"""Times statsforecast's WindowAverage on the series `shelfwatch bench
forecast` wrote: PRICES_FILE holds LISTINGS x DAYS little-endian float64
prices, listing-major. Prints the seconds for fit + 7-day forecast."""
import sys
import time

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import WindowAverage

path, listings, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
y = np.fromfile(path, dtype="<f8")
assert y.size == listings * days, (y.size, listings, days)
df = pd.DataFrame({
    "unique_id": np.repeat(np.arange(listings), days),
    "ds": np.tile(pd.date_range("2025-01-01", periods=days, freq="D").values, listings),
    "y": y,
})
sf = StatsForecast(models=[WindowAverage(window_size=7)], freq="D", n_jobs=-1)
started = time.perf_counter()
sf.forecast(df=df, h=7)
print(time.perf_counter() - started)
