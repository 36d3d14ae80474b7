"""Reports of drill runs: summary.json, README, pictures, Allure, history and the regression gate."""
