//! The vocabulary of changes, named and classified as Confluent Schema Registry does
//! (`io.confluent.kafka.schemaregistry.json.diff.Difference.Type`, strict rule set).

macro_rules! change_kinds {
    ($( $variant:ident => $name:literal, $compatible:literal, $doc:literal; )*) => {
        /// A kind of change between two JSON Schemas, named as in Confluent Schema Registry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ChangeKind {
            $(
                #[doc = $doc]
                $variant,
            )*
        }

        impl ChangeKind {
            /// Every change kind, in Confluent's declaration order.
            pub const ALL: &'static [ChangeKind] = &[$(ChangeKind::$variant,)*];

            /// Confluent's name for this kind, e.g. `"MIN_LENGTH_INCREASED"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ChangeKind::$variant => $name,)*
                }
            }

            /// Whether this change keeps the update BACKWARD compatible (Confluent's strict rule set).
            pub fn is_compatible(&self) -> bool {
                match self {
                    $(ChangeKind::$variant => $compatible,)*
                }
            }

            /// What the change means, in words for an admin.
            pub fn description(&self) -> &'static str {
                match self {
                    $(ChangeKind::$variant => $doc,)*
                }
            }

            /// Looks a kind up by its Confluent name (`"TYPE_CHANGED"`); `None` if unknown.
            pub fn from_name(name: &str) -> Option<ChangeKind> {
                match name {
                    $($name => Some(ChangeKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

change_kinds! {
    IdChanged => "ID_CHANGED", true, "The schema's `$id` changed.";
    DescriptionChanged => "DESCRIPTION_CHANGED", true, "The schema's `description` changed.";
    TitleChanged => "TITLE_CHANGED", true, "The schema's `title` changed.";
    DefaultChanged => "DEFAULT_CHANGED", true, "The schema's `default` changed.";
    SchemaAdded => "SCHEMA_ADDED", false, "A subschema (e.g. `items`) was added where there was none.";
    SchemaRemoved => "SCHEMA_REMOVED", true, "A subschema (e.g. `items`) was removed.";
    TypeExtended => "TYPE_EXTENDED", true, "The type was widened (e.g. `integer` to `number`).";
    TypeNarrowed => "TYPE_NARROWED", false, "The type was narrowed (e.g. `number` to `integer`).";
    TypeChanged => "TYPE_CHANGED", false, "The type changed to an unrelated one.";

    MaxLengthAdded => "MAX_LENGTH_ADDED", false, "`maxLength` was added.";
    MaxLengthRemoved => "MAX_LENGTH_REMOVED", true, "`maxLength` was removed.";
    MaxLengthIncreased => "MAX_LENGTH_INCREASED", true, "`maxLength` was raised.";
    MaxLengthDecreased => "MAX_LENGTH_DECREASED", false, "`maxLength` was lowered.";
    MinLengthAdded => "MIN_LENGTH_ADDED", false, "`minLength` was added.";
    MinLengthRemoved => "MIN_LENGTH_REMOVED", true, "`minLength` was removed.";
    MinLengthIncreased => "MIN_LENGTH_INCREASED", false, "`minLength` was raised.";
    MinLengthDecreased => "MIN_LENGTH_DECREASED", true, "`minLength` was lowered.";
    PatternAdded => "PATTERN_ADDED", false, "`pattern` was added.";
    PatternRemoved => "PATTERN_REMOVED", true, "`pattern` was removed.";
    PatternChanged => "PATTERN_CHANGED", false, "`pattern` changed.";

    MaximumAdded => "MAXIMUM_ADDED", false, "`maximum` was added.";
    MaximumRemoved => "MAXIMUM_REMOVED", true, "`maximum` was removed.";
    MaximumIncreased => "MAXIMUM_INCREASED", true, "`maximum` was raised.";
    MaximumDecreased => "MAXIMUM_DECREASED", false, "`maximum` was lowered.";
    MinimumAdded => "MINIMUM_ADDED", false, "`minimum` was added.";
    MinimumRemoved => "MINIMUM_REMOVED", true, "`minimum` was removed.";
    MinimumIncreased => "MINIMUM_INCREASED", false, "`minimum` was raised.";
    MinimumDecreased => "MINIMUM_DECREASED", true, "`minimum` was lowered.";
    ExclusiveMaximumAdded => "EXCLUSIVE_MAXIMUM_ADDED", false, "`exclusiveMaximum` was added.";
    ExclusiveMaximumRemoved => "EXCLUSIVE_MAXIMUM_REMOVED", true, "`exclusiveMaximum` was removed.";
    ExclusiveMaximumIncreased => "EXCLUSIVE_MAXIMUM_INCREASED", true, "`exclusiveMaximum` was raised.";
    ExclusiveMaximumDecreased => "EXCLUSIVE_MAXIMUM_DECREASED", false, "`exclusiveMaximum` was lowered.";
    ExclusiveMinimumAdded => "EXCLUSIVE_MINIMUM_ADDED", false, "`exclusiveMinimum` was added.";
    ExclusiveMinimumRemoved => "EXCLUSIVE_MINIMUM_REMOVED", true, "`exclusiveMinimum` was removed.";
    ExclusiveMinimumIncreased => "EXCLUSIVE_MINIMUM_INCREASED", false, "`exclusiveMinimum` was raised.";
    ExclusiveMinimumDecreased => "EXCLUSIVE_MINIMUM_DECREASED", true, "`exclusiveMinimum` was lowered.";
    MultipleOfAdded => "MULTIPLE_OF_ADDED", false, "`multipleOf` was added.";
    MultipleOfRemoved => "MULTIPLE_OF_REMOVED", true, "`multipleOf` was removed.";
    MultipleOfExpanded => "MULTIPLE_OF_EXPANDED", false, "`multipleOf` became a multiple of the old value.";
    MultipleOfReduced => "MULTIPLE_OF_REDUCED", true, "`multipleOf` became a divisor of the old value.";
    MultipleOfChanged => "MULTIPLE_OF_CHANGED", false, "`multipleOf` changed to an unrelated value.";

    RequiredAttributeAdded => "REQUIRED_ATTRIBUTE_ADDED", false, "An existing property became required.";
    RequiredAttributeWithDefaultAdded => "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", true, "An existing property with a default became required.";
    RequiredAttributeRemoved => "REQUIRED_ATTRIBUTE_REMOVED", true, "A property is no longer required.";
    MaxPropertiesAdded => "MAX_PROPERTIES_ADDED", false, "`maxProperties` was added.";
    MaxPropertiesRemoved => "MAX_PROPERTIES_REMOVED", true, "`maxProperties` was removed.";
    MaxPropertiesIncreased => "MAX_PROPERTIES_INCREASED", true, "`maxProperties` was raised.";
    MaxPropertiesDecreased => "MAX_PROPERTIES_DECREASED", false, "`maxProperties` was lowered.";
    MinPropertiesAdded => "MIN_PROPERTIES_ADDED", false, "`minProperties` was added.";
    MinPropertiesRemoved => "MIN_PROPERTIES_REMOVED", true, "`minProperties` was removed.";
    MinPropertiesIncreased => "MIN_PROPERTIES_INCREASED", false, "`minProperties` was raised.";
    MinPropertiesDecreased => "MIN_PROPERTIES_DECREASED", true, "`minProperties` was lowered.";
    AdditionalPropertiesAdded => "ADDITIONAL_PROPERTIES_ADDED", true, "Additional properties became permitted.";
    AdditionalPropertiesRemoved => "ADDITIONAL_PROPERTIES_REMOVED", false, "Additional properties are no longer permitted.";
    AdditionalPropertiesExtended => "ADDITIONAL_PROPERTIES_EXTENDED", true, "The `additionalProperties` schema was dropped, allowing anything.";
    AdditionalPropertiesNarrowed => "ADDITIONAL_PROPERTIES_NARROWED", false, "An `additionalProperties` schema was added to an open model.";
    DependencyArrayAdded => "DEPENDENCY_ARRAY_ADDED", false, "A property dependency (array form) was added.";
    DependencyArrayRemoved => "DEPENDENCY_ARRAY_REMOVED", true, "A property dependency (array form) was removed.";
    DependencyArrayExtended => "DEPENDENCY_ARRAY_EXTENDED", false, "A property dependency now requires more properties.";
    DependencyArrayNarrowed => "DEPENDENCY_ARRAY_NARROWED", true, "A property dependency now requires fewer properties.";
    DependencyArrayChanged => "DEPENDENCY_ARRAY_CHANGED", false, "A property dependency changed to an unrelated set.";
    DependencySchemaAdded => "DEPENDENCY_SCHEMA_ADDED", false, "A schema dependency was added.";
    DependencySchemaRemoved => "DEPENDENCY_SCHEMA_REMOVED", true, "A schema dependency was removed.";
    PropertyAddedToOpenContentModel => "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false, "Deprecated by Confluent; never reported (see the REQUIRED_/OPTIONAL_ variants).";
    RequiredPropertyAddedToOpenContentModel => "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false, "A required property was added to an open content model.";
    RequiredPropertyWithDefaultAddedToOpenContentModel => "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL", false, "A required property with a default was added to an open content model.";
    OptionalPropertyAddedToOpenContentModel => "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false, "An optional property was added to an open content model.";
    PropertyWithEmptySchemaAddedToOpenContentModel => "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true, "A property with an empty (`{}`/`true`) schema was added to an open content model.";
    RequiredPropertyAddedToUnopenContentModel => "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", false, "A required property was added to a closed or partially open content model.";
    RequiredPropertyWithDefaultAddedToUnopenContentModel => "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", true, "A required property with a default was added to a closed or partially open content model.";
    OptionalPropertyAddedToUnopenContentModel => "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", true, "An optional property was added to a closed or partially open content model.";
    PropertyRemovedFromOpenContentModel => "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", true, "A property was removed and the update's content model is open.";
    PropertyWithFalseRemovedFromClosedContentModel => "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true, "A property with a `false` schema was removed from a closed content model.";
    PropertyRemovedFromClosedContentModel => "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", false, "A property was removed from a closed content model.";
    PropertyRemovedIsCoveredByPartiallyOpenContentModel => "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true, "A removed property is still accepted by the update's partially open content model.";
    PropertyRemovedNotCoveredByPartiallyOpenContentModel => "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false, "A removed property is not accepted by the update's partially open content model.";
    PropertyAddedIsCoveredByPartiallyOpenContentModel => "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true, "An added property accepts what the original's partially open content model accepted.";
    PropertyAddedNotCoveredByPartiallyOpenContentModel => "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false, "An added property rejects data the original's partially open content model accepted.";
    ReservedPropertyRemoved => "RESERVED_PROPERTY_REMOVED", false, "A reserved property was removed from the metadata (not produced by this crate).";
    ReservedPropertyConflictsWithProperty => "RESERVED_PROPERTY_CONFLICTS_WITH_PROPERTY", false, "A property conflicts with a reserved property (not produced by this crate).";
    UnevaluatedPropertiesAdded => "UNEVALUATED_PROPERTIES_ADDED", true, "Unevaluated properties became permitted.";
    UnevaluatedPropertiesRemoved => "UNEVALUATED_PROPERTIES_REMOVED", false, "Unevaluated properties are no longer permitted.";
    UnevaluatedPropertiesExtended => "UNEVALUATED_PROPERTIES_EXTENDED", true, "The `unevaluatedProperties` schema was relaxed.";
    UnevaluatedPropertiesNarrowed => "UNEVALUATED_PROPERTIES_NARROWED", false, "The `unevaluatedProperties` schema was tightened.";

    MaxItemsAdded => "MAX_ITEMS_ADDED", false, "`maxItems` was added.";
    MaxItemsRemoved => "MAX_ITEMS_REMOVED", true, "`maxItems` was removed.";
    MaxItemsIncreased => "MAX_ITEMS_INCREASED", true, "`maxItems` was raised.";
    MaxItemsDecreased => "MAX_ITEMS_DECREASED", false, "`maxItems` was lowered.";
    MinItemsAdded => "MIN_ITEMS_ADDED", false, "`minItems` was added.";
    MinItemsRemoved => "MIN_ITEMS_REMOVED", true, "`minItems` was removed.";
    MinItemsIncreased => "MIN_ITEMS_INCREASED", false, "`minItems` was raised.";
    MinItemsDecreased => "MIN_ITEMS_DECREASED", true, "`minItems` was lowered.";
    MaxContainsAdded => "MAX_CONTAINS_ADDED", false, "`maxContains` was added.";
    MaxContainsRemoved => "MAX_CONTAINS_REMOVED", true, "`maxContains` was removed.";
    MaxContainsIncreased => "MAX_CONTAINS_INCREASED", true, "`maxContains` was raised.";
    MaxContainsDecreased => "MAX_CONTAINS_DECREASED", false, "`maxContains` was lowered.";
    MinContainsAdded => "MIN_CONTAINS_ADDED", false, "`minContains` was added.";
    MinContainsRemoved => "MIN_CONTAINS_REMOVED", true, "`minContains` was removed.";
    MinContainsIncreased => "MIN_CONTAINS_INCREASED", false, "`minContains` was raised.";
    MinContainsDecreased => "MIN_CONTAINS_DECREASED", true, "`minContains` was lowered.";
    UniqueItemsAdded => "UNIQUE_ITEMS_ADDED", false, "`uniqueItems: true` was added.";
    UniqueItemsRemoved => "UNIQUE_ITEMS_REMOVED", true, "`uniqueItems: true` was removed.";
    AdditionalItemsAdded => "ADDITIONAL_ITEMS_ADDED", true, "Additional items became permitted.";
    AdditionalItemsRemoved => "ADDITIONAL_ITEMS_REMOVED", false, "Additional items are no longer permitted.";
    AdditionalItemsExtended => "ADDITIONAL_ITEMS_EXTENDED", true, "The additional-items schema was dropped, allowing anything.";
    AdditionalItemsNarrowed => "ADDITIONAL_ITEMS_NARROWED", false, "An additional-items schema was added to an open model.";
    UnevaluatedItemsAdded => "UNEVALUATED_ITEMS_ADDED", true, "Unevaluated items became permitted.";
    UnevaluatedItemsRemoved => "UNEVALUATED_ITEMS_REMOVED", false, "Unevaluated items are no longer permitted.";
    UnevaluatedItemsExtended => "UNEVALUATED_ITEMS_EXTENDED", true, "The `unevaluatedItems` schema was relaxed.";
    UnevaluatedItemsNarrowed => "UNEVALUATED_ITEMS_NARROWED", false, "The `unevaluatedItems` schema was tightened.";
    ItemAddedToOpenContentModel => "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", false, "A tuple item was added to an open content model.";
    ItemWithEmptySchemaAddedToOpenContentModel => "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true, "A tuple item with an empty schema was added to an open content model.";
    ItemAddedToClosedContentModel => "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", true, "A tuple item was added to a closed content model.";
    ItemRemovedFromOpenContentModel => "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", true, "A tuple item was removed and the update's content model is open.";
    ItemWithFalseRemovedFromClosedContentModel => "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true, "A tuple item with a `false` schema was removed from a closed content model.";
    ItemRemovedFromClosedContentModel => "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", false, "A tuple item was removed from a closed content model.";
    ItemRemovedIsCoveredByPartiallyOpenContentModel => "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true, "A removed tuple item is still accepted by the update's additional-items schema.";
    ItemRemovedNotCoveredByPartiallyOpenContentModel => "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false, "A removed tuple item is not accepted by the update's additional-items schema.";
    ItemAddedIsCoveredByPartiallyOpenContentModel => "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true, "An added tuple item accepts what the original's additional-items schema accepted.";
    ItemAddedNotCoveredByPartiallyOpenContentModel => "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false, "An added tuple item rejects data the original's additional-items schema accepted.";

    EnumArrayExtended => "ENUM_ARRAY_EXTENDED", true, "The `enum` gained values.";
    EnumArrayNarrowed => "ENUM_ARRAY_NARROWED", false, "The `enum` lost values.";
    EnumArrayChanged => "ENUM_ARRAY_CHANGED", false, "The `enum` (or `const`) changed to unrelated values.";

    CombinedTypeExtended => "COMBINED_TYPE_EXTENDED", true, "The combinator was relaxed (e.g. `oneOf` to `anyOf`).";
    CombinedTypeChanged => "COMBINED_TYPE_CHANGED", false, "The combinator changed incompatibly (e.g. `oneOf` to `allOf`).";
    ProductTypeExtended => "PRODUCT_TYPE_EXTENDED", false, "An `allOf` gained subschemas.";
    ProductTypeNarrowed => "PRODUCT_TYPE_NARROWED", true, "An `allOf` lost subschemas.";
    SumTypeExtended => "SUM_TYPE_EXTENDED", true, "A `oneOf`/`anyOf` (or type array) gained alternatives.";
    SumTypeNarrowed => "SUM_TYPE_NARROWED", false, "A `oneOf`/`anyOf` (or type array) lost alternatives.";
    CombinedTypeSubschemasChanged => "COMBINED_TYPE_SUBSCHEMAS_CHANGED", false, "The subschemas of a combinator could not all be matched compatibly.";
    NotTypeExtended => "NOT_TYPE_EXTENDED", false, "The `not` schema now excludes more.";
    NotTypeNarrowed => "NOT_TYPE_NARROWED", true, "The `not` schema now excludes less (or the same).";
}
