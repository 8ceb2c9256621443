{{ config(materialized='incremental', unique_key='region') }}
select region, target_revenue as amount from {{ ref('stg_regions') }}
{% if is_incremental() %}
where region not in (select region from {{ this }})
{% endif %}
