package dev.peregrine.template;

import java.util.List;
import java.util.Map;

/**
 * A function a template can call, such as the {@code raise_exception} global. Arguments arrive as
 * template values (String, Long, Double, Boolean, null, List, Map); throw a
 * {@link dev.peregrine.TemplateException} to fail the render.
 */
@FunctionalInterface
public interface TemplateFunction {
    Object call(List<Object> args, Map<String, Object> kwargs);
}
