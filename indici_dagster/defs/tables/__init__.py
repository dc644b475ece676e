"""The table layers of each dataset with a rule: `indici/staging/<D>` and `indici/rpt/<D>`,
with their asset checks."""
