"""The inspection station core: config, recipes, cycle, models, results. Never imports Qt or torch."""
