"""Reports: image grids, loss/FID plots, the HTML comparison report."""
