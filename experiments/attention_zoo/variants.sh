# The attention variants that experiments/attention_zoo measures, one per line:
# model.pos, then the attention spec (sourced by one_epoch.sh and bench.sh).
# Ranks are given for the quick-start width (d=96, h=4, d_h=24); bench.sh scales them.
VARIANTS=(
  'learned mha'
  'learned mqa'
  'learned {"name":"gqa","kv_heads":2}'
  'learned {"name":"mla","kv_rank":24,"q_rank":48}'
  'learned {"name":"tucker","ranks":{"q":24,"k":24,"v":24,"o":24}}'
  'learned {"name":"tpa","q_rank":6,"k_rank":2,"v_rank":2}'
  'learned {"name":"mlr","ranks":[12,12]}'
  'learned {"name":"btt","rank":1}'
  'rope mha'
  'rope {"name":"mla","kv_rank":24,"q_rank":48,"rope_dim":8}'
  'rope {"name":"tucker","ranks":{"q":24,"k":24,"v":24,"o":24}}'
  'rope {"name":"tpa","q_rank":6,"k_rank":2,"v_rank":2}'
)
