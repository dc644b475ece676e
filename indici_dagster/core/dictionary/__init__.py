"""The data dictionary: what each dataset's tables hold, from the rules and the warehouse."""
