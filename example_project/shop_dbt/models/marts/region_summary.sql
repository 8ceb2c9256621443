select t.region, t.label, t.yearly_target, e.amount
from {{ ref('region_targets') }} as t
join {{ ref('region_events') }} as e using (region)
