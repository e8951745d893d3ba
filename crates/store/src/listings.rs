//! Listings and canonical products: what the scraper records and product
//! matching links.

use anyhow::Context;
use sqlx::{PgPool, Postgres, Transaction};

use shelfwatch_domain::quantity::{BaseUnit, Pack};

/// One listing as product matching sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MatchRow {
    pub id: i64,
    pub retailer_id: i64,
    pub retailer_name: String,
    pub title: String,
    pub pack_count: Option<i32>,
    pub pack_each: Option<i64>,
    pub base_unit: Option<String>,
    /// The product it is on now, and how it got there.
    pub product_id: Option<i64>,
    pub match_method: Option<String>,
    /// A manual override (`product_overrides`) names its product.
    pub overridden: bool,
    pub override_product: Option<i64>,
    /// The aisle the retailer shelves it in, when known.
    pub category: Option<String>,
}

/// What a product says of itself: name, brand, category and pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFacts {
    pub name: String,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub pack: Option<Pack>,
}

impl MatchRow {
    /// The stored pack size, when all of it is known.
    pub fn pack(&self) -> Option<Pack> {
        let (Some(count), Some(each), Some(unit)) =
            (self.pack_count, self.pack_each, self.base_unit.as_deref())
        else {
            return None;
        };
        let unit = match unit {
            "g" => BaseUnit::Gram,
            "ml" => BaseUnit::Millilitre,
            "each" => BaseUnit::Each,
            _ => return None,
        };
        Some(Pack {
            count: u32::try_from(count).ok()?,
            each: u64::try_from(each).ok()?,
            unit,
        })
    }
}

/// One product-matching pass: a transaction that holds the matching lock,
/// so two passes never interleave. Nothing is written until [`commit`].
///
/// [`commit`]: MatchingPass::commit
pub struct MatchingPass {
    tx: Transaction<'static, Postgres>,
}

impl MatchingPass {
    /// Starts the pass, waiting for any other pass to end.
    pub async fn begin(pool: &PgPool) -> anyhow::Result<Self> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('shelfwatch.product_matching'))")
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx })
    }

    /// Every listing, by id, with its retailer, current product and any
    /// manual override.
    pub async fn listings(&mut self) -> anyhow::Result<Vec<MatchRow>> {
        sqlx::query_as(
            "SELECT l.id, l.retailer_id, r.name AS retailer_name, l.title, l.pack_count, \
             l.pack_each, l.base_unit, l.product_id, l.match_method, \
             o.retailer_sku IS NOT NULL AS overridden, o.product_id AS override_product, \
             l.category \
             FROM listings l JOIN retailers r ON r.id = l.retailer_id \
             LEFT JOIN product_overrides o \
               ON o.retailer_id = l.retailer_id AND o.retailer_sku = l.retailer_sku \
             ORDER BY l.id",
        )
        .fetch_all(&mut *self.tx)
        .await
        .context("reading listings to match")
    }

    /// Creates a product and returns its id.
    pub async fn create_product(&mut self, facts: &ProductFacts) -> anyhow::Result<i64> {
        let pack = facts.pack;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO products (name, brand, category, pack_count, pack_each, base_unit) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&facts.name)
        .bind(&facts.brand)
        .bind(&facts.category)
        .bind(pack.map(|p| i32::try_from(p.count).unwrap_or(i32::MAX)))
        .bind(pack.map(|p| i64::try_from(p.each).unwrap_or(i64::MAX)))
        .bind(pack.map(|p| p.unit.as_str()))
        .fetch_one(&mut *self.tx)
        .await
        .context("creating a product")?;
        Ok(id)
    }

    /// Brings products up to date with `facts`; returns how many changed.
    /// A product whose facts are already these is not written.
    pub async fn update_products(&mut self, facts: &[(i64, ProductFacts)]) -> anyhow::Result<u64> {
        if facts.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = facts.iter().map(|(id, _)| *id).collect();
        let names: Vec<&str> = facts.iter().map(|(_, f)| f.name.as_str()).collect();
        let brands: Vec<Option<&str>> = facts.iter().map(|(_, f)| f.brand.as_deref()).collect();
        let categories: Vec<Option<&str>> =
            facts.iter().map(|(_, f)| f.category.as_deref()).collect();
        let counts: Vec<Option<i32>> = facts
            .iter()
            .map(|(_, f)| f.pack.map(|p| i32::try_from(p.count).unwrap_or(i32::MAX)))
            .collect();
        let eaches: Vec<Option<i64>> = facts
            .iter()
            .map(|(_, f)| f.pack.map(|p| i64::try_from(p.each).unwrap_or(i64::MAX)))
            .collect();
        let units: Vec<Option<&str>> = facts
            .iter()
            .map(|(_, f)| f.pack.map(|p| p.unit.as_str()))
            .collect();
        let done = sqlx::query(
            "UPDATE products p SET name = u.name, brand = u.brand, category = u.category, \
                 pack_count = u.pack_count, pack_each = u.pack_each, base_unit = u.base_unit \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], \
                         $6::bigint[], $7::text[]) \
                  AS u(id, name, brand, category, pack_count, pack_each, base_unit) \
             WHERE p.id = u.id \
               AND (p.name, p.brand, p.category, p.pack_count, p.pack_each, p.base_unit) \
                   IS DISTINCT FROM \
                   (u.name, u.brand, u.category, u.pack_count, u.pack_each, u.base_unit)",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&brands)
        .bind(&categories)
        .bind(&counts)
        .bind(&eaches)
        .bind(&units)
        .execute(&mut *self.tx)
        .await
        .context("updating product names and categories")?;
        Ok(done.rows_affected())
    }

    /// Puts listing `ids[i]` on product `products[i]`, matched by
    /// `methods[i]`.
    pub async fn set_products(
        &mut self,
        ids: &[i64],
        products: &[i64],
        methods: &[&str],
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE listings l SET product_id = u.product, match_method = u.method \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS u(id, product, method) \
             WHERE l.id = u.id",
        )
        .bind(ids)
        .bind(products)
        .bind(methods)
        .execute(&mut *self.tx)
        .await
        .context("writing product matches")?;
        Ok(())
    }

    /// Writes the pass and releases the lock.
    pub async fn commit(self) -> anyhow::Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Every product some listing is on.
pub async fn matched_product_ids(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let ids =
        sqlx::query_scalar("SELECT DISTINCT product_id FROM listings WHERE product_id IS NOT NULL")
            .fetch_all(pool)
            .await?;
    Ok(ids)
}
