CREATE TABLE IF NOT EXISTS `every_type` (
  `name` VARCHAR(400) NOT NULL,
  `id` BIGINT NOT NULL,
  `note` STRING NULL,
  `i2` SMALLINT NULL,
  `i4` INT NULL,
  `price` DECIMAL(12, 2) NULL,
  `wide` STRING NULL,
  `free` STRING NULL,
  `f4` DOUBLE NULL,
  `f8` DOUBLE NULL,
  `cash` STRING NULL,
  `code` VARCHAR(12) NULL,
  `huge` STRING NULL,
  `any` VARCHAR(65533) NULL,
  `bin` STRING NULL,
  `ts` DATETIMEV2(3) NULL,
  `tstz` DATETIMEV2(6) NULL,
  `d` DATEV2 NULL,
  `t` STRING NULL,
  `ttz` STRING NULL,
  `iv` STRING NULL,
  `ok` BOOLEAN NULL,
  `pt` STRING NULL,
  `addr` STRING NULL,
  `tsv` STRING NULL,
  `doc` STRING NULL,
  `js` JSON NULL,
  `jb` JSON NULL,
  `u` STRING NULL,
  `bits` STRING NULL,
  `tags` STRING NULL
) UNIQUE KEY(`name`, `id`)
DISTRIBUTED BY HASH(`id`) BUCKETS AUTO
PROPERTIES (
  "light_schema_change" = "true",
  "enable_unique_key_merge_on_write" = "true",
  "function_column.sequence_type" = "LARGEINT"
)
