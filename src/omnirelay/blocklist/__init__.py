"""An organization's block lists: phone numbers no message may go to (seed 001 error
1019; opt-outs will add to it) and IP networks whose requests are refused (1013)."""
