select region, label, target_revenue from {{ ref('regions') }}
