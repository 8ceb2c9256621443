select region, label, target_revenue, target_revenue * 4 as yearly_target
from {{ ref('stg_regions') }}
