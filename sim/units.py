"""Time units shared by the configuration, the kernels and the statistics (a month is a twelfth of a Julian year)."""

DAYS_PER_WEEK = 7.0
DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
HOURS_PER_DAY = 24.0
